package proxy

import (
	"context"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestRunAsSource: the proxy is a stream.Source like a capture: Run feeds the observer it is
// given every connection's bytes, and when its context ends it shuts down, telling the MQTT 5
// device (DISCONNECT 0x8B), and reports the end as the proxy's.
func TestRunAsSource(t *testing.T) {
	srv, err := New(Config{Listen: Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, Embedded: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var src stream.Source = srv
	col := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, col) }()
	dev := connectDevice(t, srv.Addr().String(), "run-source")
	dev.send(t, &decode.Pingreq{Base: decode.Base{Version: decode.V5}})
	if typ := dev.readFrame(t); typ != decode.PINGRESP {
		t.Fatalf("got %v, want PINGRESP", typ)
	}
	col.waitData(t, 1, stream.S2C, 6) // CONNACK (at least 5 bytes) and PINGRESP
	cancel()
	if typ := dev.readFrame(t); typ != decode.DISCONNECT {
		t.Fatalf("got %v at shutdown, want DISCONNECT", typ)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if by, _ := col.waitClosed(t, 1); by != "proxy" {
		t.Errorf("closed by %s, want the proxy", by)
	}
}
