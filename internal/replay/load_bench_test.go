package replay

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// manySource is a capture of conns connections of pubs PUBLISH packets each; heapMB is the heap
// in use after a garbage collection at its end, while Load still holds what it keeps.
type manySource struct {
	conns, pubs int
	heapMB      *float64
}

func (m manySource) Run(ctx context.Context, o stream.Observer) error {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	pub, err := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "t/x", Payload: make([]byte, 100)})
	if err != nil {
		return err
	}
	for i := 1; i <= m.conns; i++ {
		c := o.Open(&stream.Conn{ID: i})
		con, err := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "dev-" + strconv.Itoa(i)})
		if err != nil {
			return err
		}
		c.Data(stream.C2S, at, con)
		c.Data(stream.S2C, at, []byte{0x20, 0x03, 0x00, 0x00, 0x00}) // CONNACK
		for range m.pubs {
			c.Data(stream.C2S, at, pub)
		}
		c.Close(at, stream.End{By: stream.Client, How: stream.FIN})
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	*m.heapMB = float64(ms.HeapInuse) / (1 << 20)
	return nil
}

// BenchmarkLoadOneOfMany: loading one connection (--conn, --client, --filter) of a capture of 200
// connections of 2,000 messages holds that one, not the capture (heap-MB).
func BenchmarkLoadOneOfMany(b *testing.B) {
	f, err := inspect.CompileFilter(`client_id == "dev-7"`)
	if err != nil {
		b.Fatal(err)
	}
	for name, sel := range map[string]Selector{"conn": {Conn: 7}, "client": {ClientID: "dev-7"}, "filter": {Filter: f}} {
		b.Run(name, func(b *testing.B) {
			var heap float64
			for range b.N {
				ss, err := Load(context.Background(), manySource{200, 2000, &heap}, sel, inspect.Options{})
				if err != nil || len(ss) != 1 || len(ss[0].Packets) != 2002 {
					b.Fatalf("%d sessions, %v", len(ss), err)
				}
			}
			b.ReportMetric(heap, "heap-MB")
		})
	}
}
