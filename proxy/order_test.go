package proxy

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// TestInspectOrderFollowsCause: a device that sends a PUBLISH the moment it reads its CONNACK
// must have that CONNACK inspected first, or the model would judge the PUBLISH before knowing
// the limits it was sent under. Each round trip gives the two forwarding goroutines a chance to
// race; the order of the records must follow cause and effect every time.
func TestInspectOrderFollowsCause(t *testing.T) {
	rw := &recordWriter{}
	in := NewInspector(inspect.Options{}, inspect.NewOutput(rw, nil, nil, nil, 1<<14), nil)
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: broker(t, "embedded")}, Observers: []stream.Observer{in, col}})
	const rounds = 30
	for i := range rounds {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		send := func(p decode.Packet) {
			b, err := decode.Encode(nil, p)
			if err == nil {
				_, err = c.Write(b)
			}
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		read := func() decode.Packet {
			fr := decode.NewFramer(0)
			buf := make([]byte, 256)
			for {
				if f, err := fr.Next(); err != nil || f != nil {
					if err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
					return decode.Decode(f, decode.V5)
				}
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("round %d: reading: %v", i, err)
				}
				fr.Write(buf[:n])
			}
		}
		send(&decode.Connect{CleanStart: true, KeepAlive: 30, ClientID: fmt.Sprintf("order-%d", i)}) // unique: no session takeover
		if p := read(); p.Type() != decode.CONNACK {
			t.Fatalf("round %d: got %s, want CONNACK", i, p.Type())
		}
		send(&decode.Publish{QoS: 1, PacketID: 1, Topic: "order/t", Payload: []byte("x")})
		if p := read(); p.Type() != decode.PUBACK {
			t.Fatalf("round %d: got %s, want PUBACK", i, p.Type())
		}
		send(&decode.Disconnect{})
		c.Close()
	}
	// The inspector saw each connection whole before the collector, after it, saw it close.
	for id := 1; id <= rounds; id++ {
		col.waitClosed(t, id)
	}
	in.Flush()
	rw.mu.Lock()
	defer rw.mu.Unlock()
	order := map[int][]decode.Type{}
	for _, r := range rw.recs {
		if pr, ok := r.(*inspect.PacketRecord); ok {
			order[pr.Conn] = append(order[pr.Conn], pr.Packet.Type())
		}
	}
	if len(order) != rounds {
		t.Fatalf("records for %d connections, want %d", len(order), rounds)
	}
	want := []decode.Type{decode.CONNECT, decode.CONNACK, decode.PUBLISH, decode.PUBACK, decode.DISCONNECT}
	for id, got := range order {
		if len(got) != len(want) {
			t.Errorf("conn %d: %v, want %v", id, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("conn %d: records in order %v, want %v", id, got, want)
				break
			}
		}
	}
}
