package proxy

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// TestEmbeddedCloseWhileClientsLeave: the embedded broker closes while its clients are
// leaving (mochi deleting them), many times over, and never hangs (mochi's own Close could,
// taking its clients' read lock twice around a waiting Delete).
func TestEmbeddedCloseWhileClientsLeave(t *testing.T) {
	connect, err := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 40; round++ {
		e, err := StartEmbedded("", nil)
		if err != nil {
			t.Fatal(err)
		}
		var conns []net.Conn
		for i := 0; i < 8; i++ {
			c, err := e.Dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(connect); err != nil { // no client id: mochi assigns one
				t.Fatal(err)
			}
			ack := make([]byte, 4)
			if _, err := io.ReadFull(c, ack); err != nil {
				t.Fatalf("round %d client %d: no CONNACK: %v", round, i, err)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }() // mochi deletes the client as Close runs
		}
		done := make(chan error, 1)
		go func() { done <- e.Close() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("round %d: Close hung:\n%s", round, buf[:runtime.Stack(buf, true)])
		}
		wg.Wait()
	}
}
