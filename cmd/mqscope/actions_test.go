package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/stream"
)

// actionsRig is a proxy to the embedded broker with live fault rules and the intercept, and the
// UI's actions over them.
func actionsRig(t *testing.T) (*proxyActions, string) {
	t.Helper()
	set := &fault.Set{Live: true}
	ic := proxy.NewIntercept()
	in := proxy.NewInspector(inspect.Options{}, nil, nil)
	srv, err := proxy.New(proxy.Config{Listen: proxy.Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, Embedded: true,
		Observers: []stream.Observer{in}, Stages: chainStages(set.Stages, ic.Stages), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &proxyActions{srv: srv, in: in, set: set, ic: ic, async: func(f func()) { go f() }}, srv.Addr().String()
}

func actionsDevice(t *testing.T, addr, id string) *device {
	t.Helper()
	d, _, err := dialDevice(context.Background(), addr, &decode.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.drop)
	return d
}

// endedWith waits for d's connection to end and returns the DISCONNECT it got (nil: none).
func endedWith(t *testing.T, d *device) *decode.Disconnect {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the connection did not end", d.name)
	}
	return d.end.Load()
}

func TestActionsFaultPalette(t *testing.T) {
	a, addr := actionsRig(t)
	specs := a.Faults()
	if len(specs) != len(fault.Catalog()) {
		t.Errorf("%d faults offered, the proxy has %d", len(specs), len(fault.Catalog()))
	}
	// Every rule offered that needs no filling in parses.
	for _, s := range specs {
		if _, ok := paletteRules[s.Name]; !ok {
			continue
		}
		if _, err := fault.Parse(s.Rule, 1); err != nil {
			t.Errorf("palette rule %q: %v", s.Rule, err)
		}
	}
	d := actionsDevice(t, addr, "dev")
	if err := a.Fault(1, "oversize size=nonsense"); err == nil {
		t.Error("a rule that does not parse was accepted")
	}
	if err := a.Fault(1, `disconnect dir=s2c reason=0x98 reason_string="from the palette" type=PUBACK`); err != nil {
		t.Fatal(err)
	}
	d.send(&decode.Publish{Base: decode.Base{Version: decode.V5}, QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("x")})
	if got := endedWith(t, d); got == nil || got.ReasonCode != 0x98 {
		t.Errorf("the device got %+v, want DISCONNECT 0x98 instead of its PUBACK", got)
	}
}

func TestActionsDisconnectReset(t *testing.T) {
	a, addr := actionsRig(t)
	d1 := actionsDevice(t, addr, "one")
	d2 := actionsDevice(t, addr, "two")
	if err := a.Disconnect(1, decode.ReasonCode(0x04), ""); err == nil {
		t.Error("DISCONNECT 0x04 (a client's) was accepted from the proxy")
	}
	if err := a.Disconnect(9, decode.ServerBusy, ""); !errors.Is(err, proxy.ErrNoConn) {
		t.Errorf("connection 9: %v, want ErrNoConn", err)
	}
	if err := a.Disconnect(1, decode.ReasonCode(0x8E), "taken over (test)"); err != nil {
		t.Fatal(err)
	}
	if got := endedWith(t, d1); got == nil || got.ReasonCode != 0x8E {
		t.Errorf("device one got %+v, want DISCONNECT 0x8E", got)
	}
	if err := a.Reset(2); err != nil {
		t.Fatal(err)
	}
	if got := endedWith(t, d2); got != nil {
		t.Errorf("device two got %+v on a reset", got)
	}
}

func TestActionsIntercept(t *testing.T) {
	a, addr := actionsRig(t)
	changes := make(chan struct{}, 16)
	a.Notify(func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	})
	sub := actionsDevice(t, addr, "sub")
	if err := sub.subscribe("t/#", 0, 0); err != nil {
		t.Fatal(err)
	}
	pub := actionsDevice(t, addr, "pub")
	if err := a.Intercept(`client_id == "pub" && type == "PUBLISH"`); err != nil {
		t.Fatal(err)
	}
	if err := a.Intercept(`nonsense ==`); err == nil {
		t.Error("a filter that does not compile was accepted")
	}
	pub.send(&decode.Publish{Base: decode.Base{Version: decode.V5}, QoS: 1, PacketID: 1, Topic: "t/1", Payload: []byte("before")})
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing held")
	}
	hs := a.Held()
	if len(hs) != 1 || hs[0].Conn != 2 || hs[0].Dir != stream.C2S {
		t.Fatalf("held %+v", hs)
	}
	edited, err := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, QoS: 1, PacketID: 1, Topic: "t/1", Payload: []byte("after the edit")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(hs[0].ID, edited); err != nil {
		t.Fatal(err)
	}
	if err := a.Forward(hs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := sub.expectPublish("t/1", "after the edit"); err != nil {
		t.Error(err)
	}
	if err := a.Drop(hs[0].ID); !errors.Is(err, proxy.ErrNotHeld) || !strings.Contains(err.Error(), "no held packet") {
		t.Errorf("dropping a released packet: %v", err)
	}
}

// TestProxyUIUsage: --readonly goes with --ui, and --ui refuses the flags of printed output.
func TestProxyUIUsage(t *testing.T) {
	checkExits(t, []exitCase{
		{"readonly without ui", []string{"proxy", "--upstream", "embedded", "--readonly"}, exitUsage, "--readonly goes with --ui"},
		{"ui with format", []string{"proxy", "--upstream", "embedded", "--ui", "--format", "jsonl"}, exitUsage, "--format is for printed output, not for the UI"},
		{"ui with quiet", []string{"proxy", "--upstream", "embedded", "--ui", "-q"}, exitUsage, "--quiet is for printed output"},
	})
}
