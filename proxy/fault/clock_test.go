package fault

import (
	"context"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// TestTimeWindowThroughProxy: a rule's time window runs on the proxy's clock (Config.Clock,
// here a fake one). The broker's PINGRESP is answered as usual until 10 s after its SUBACK; from
// then on the proxy sends DISCONNECT 0x89 in its place.
func TestTimeWindowThroughProxy(t *testing.T) {
	rs, err := ParseAll([]string{"disconnect dir=s2c type=PINGRESP reason=0x89 since=SUBACK start=10s"})
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Unix(1000, 0))
	srv := serveProxy(t, proxy.Config{Clock: clock, Stages: (&Set{Rules: rs}).Stages})
	ctx, dev := connectDevice(t, srv, "clocked")
	// next sends p and returns the type of what comes back, and its reason code.
	next := func(p decode.Packet) (decode.Type, decode.ReasonCode) {
		t.Helper()
		if err := dev.Send(p); err != nil {
			t.Fatal(err)
		}
		q, err := dev.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := q.(*decode.Disconnect); ok {
			return q.Type(), d.ReasonCode
		}
		return q.Type(), 0
	}
	v5 := decode.Base{Version: decode.V5}
	ping := &decode.Pingreq{Base: v5}
	clock.Advance(time.Hour) // before the SUBACK, no time opens the window
	if typ, _ := next(ping); typ != decode.PINGRESP {
		t.Fatalf("before SUBACK: %v", typ)
	}
	if typ, _ := next(&decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a"}}}); typ != decode.SUBACK {
		t.Fatalf("SUBSCRIBE answered with %v", typ)
	}
	clock.Advance(9999 * time.Millisecond)
	if typ, _ := next(ping); typ != decode.PINGRESP {
		t.Fatalf("9.999 s after SUBACK: %v", typ)
	}
	clock.Advance(time.Millisecond)
	if typ, rc := next(ping); typ != decode.DISCONNECT || rc != 0x89 {
		t.Fatalf("10 s after SUBACK: %v 0x%02X, want DISCONNECT 0x89", typ, byte(rc))
	}
}

// connectDevice connects an MQTT 5 client as clientID to srv, both for 10 s at most (ctx), and
// reads its CONNACK.
func connectDevice(t *testing.T, srv *proxy.Server, clientID string) (context.Context, *mqttclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	dev, err := mqttclient.Dial(ctx, stream.Endpoint{Transport: stream.TCP, Addr: srv.Addr().String()}, mqttclient.DialOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if _, err := dev.Connect(ctx, &decode.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60}); err != nil {
		t.Fatal(err)
	}
	return ctx, dev
}

// serveProxy runs a proxy to the embedded broker on a loopback port with cfg until the test
// ends.
func serveProxy(t *testing.T, cfg proxy.Config) *proxy.Server {
	t.Helper()
	cfg.Embedded, cfg.Listen, cfg.Logf = true, proxy.Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, t.Logf
	srv, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}
