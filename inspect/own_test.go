package inspect

import (
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestOwnOnlyItsFrames: only the frames the proxy's own bytes complete are the proxy's: frames
// a direction held after a loss and gives at the end (Finish) are the peer's.
func TestOwnOnlyItsFrames(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{Base: v5, ClientID: "own", KeepAlive: 60}))
	c.Feed(stream.S2C, t0, enc(t, &decode.Connack{Base: v5}))
	c.Gap(stream.C2S, t0, 10)
	pub := enc(t, publish("a/b", 0, 0, "after the loss"))
	var got []Record
	// After the loss, what may be the header of a 66-byte frame still to complete, then two
	// whole PUBLISHes: the direction holds them until it can tell, here at the end.
	held := append(append([]byte{0x30, 0x40}, pub...), pub...)
	got = append(got, c.Feed(stream.C2S, t0, held)...)
	got = append(got, c.FeedOwn(stream.S2C, t0, enc(t, &decode.Disconnect{Base: v5, ReasonCode: decode.ServerShuttingDown, HasReason: true}))...)
	got = append(got, c.Finish(t0)...)
	var own, peer int
	for _, r := range got {
		if pr, ok := r.(*PacketRecord); ok {
			switch {
			case pr.ByProxy && pr.Type() == decode.DISCONNECT:
				own++
			case pr.ByProxy:
				t.Errorf("%s #%d from the %s marked as the proxy's", pr.Type(), pr.Index, pr.Dir.Sender())
			default:
				peer++
			}
		}
	}
	if own != 1 || peer == 0 {
		t.Errorf("%d records of the proxy's DISCONNECT, %d of the peer's", own, peer)
	}
}
