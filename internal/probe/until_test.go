package probe

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
)

// TestUntilKeepsWhatJudges: reading a broker's reaction keeps the refusals and the DISCONNECT
// it is judged by, not the PUBLISHes a broker floods the connection with meanwhile (20,000
// here: every one was kept before).
func TestUntilKeepsWhatJudges(t *testing.T) {
	a, b := net.Pipe()
	c := &conn{Client: mqttclient.New(a, nil)}
	t.Cleanup(func() { c.Close(); b.Close() })
	v5 := decode.Base{Version: decode.V5}
	go func() {
		var buf []byte
		pub, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: "flood", Payload: []byte("x")})
		for range 20000 {
			buf = append(buf, pub...)
		}
		buf, _ = decode.Encode(buf, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1, ReasonCode: decode.QuotaExceeded, HasReason: true})
		buf = append(buf, pub...)
		buf, _ = decode.Encode(buf, &decode.Disconnect{Base: v5, ReasonCode: decode.ReceiveMaximumExceeded, HasReason: true})
		b.Write(buf)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kept, err := c.until(ctx, func(q decode.Packet) bool { return q.Type() == decode.DISCONNECT })
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Type() != decode.PUBACK || kept[1].Type() != decode.DISCONNECT {
		var types []decode.Type
		for _, q := range kept[:min(len(kept), 5)] {
			types = append(types, q.Type())
		}
		t.Errorf("kept %d packets (%v...); want the refusing PUBACK and the DISCONNECT", len(kept), types)
	}
}
