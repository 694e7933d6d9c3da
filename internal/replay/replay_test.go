package replay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

const limitsCapture = "../../testdata/captures/mqtt5-limits.pcapng"

// limitsBroker is the configuration of the broker of mqtt5-limits (testdata/captures/gen.sh).
var limitsBroker = []string{"max_packet_size 200", "max_topic_alias 2", "max_qos 1", "retain_available false", "max_inflight_messages 2"}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func load(t *testing.T, sel Selector) *Session {
	t.Helper()
	ss, err := Load(ctxT(t), &capture.Files{Names: []string{limitsCapture}}, sel, inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 {
		t.Fatalf("%d sessions selected", len(ss))
	}
	return ss[0]
}

func dial(t *testing.T, e stream.Endpoint, o mqttclient.DialOptions) *mqttclient.Client {
	c, err := mqttclient.Dial(ctxT(t), e, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLimitsCapture: the breaches of mqtt5-limits played to a mosquitto configured like the
// capture's broker get the captured reactions; to a mosquitto without those limits they do
// not, and the first divergence says so.
func TestLimitsCapture(t *testing.T) {
	strict := peer.StartMosquitto(t, limitsBroker...)
	lax := peer.StartMosquitto(t)
	for _, tc := range []struct {
		name     string
		conn     int
		replayed []string
		lax      string // the divergence against the lax broker
	}{
		{"packet too large", 9, []string{"CONNACK", "DISCONNECT 0x95"},
			"captured: DISCONNECT 0x95 after PUBLISH #3; replayed: nothing within 1s"},
		{"alias over the maximum", 5, []string{"CONNACK", "DISCONNECT 0x94"}, ""},
		{"QoS 2 over Maximum QoS", 10, []string{"CONNACK", "DISCONNECT 0x9B"},
			"captured: DISCONNECT 0x9B after PUBLISH #3; replayed: PUBREC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := load(t, Selector{Conn: tc.conn})
			res, err := AsClient(ctxT(t), s, dial(t, stream.Endpoint{Addr: strict.Addr}, mqttclient.DialOptions{}), Options{Wait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Divergence != nil || strings.Join(res.Replayed, "|") != strings.Join(tc.replayed, "|") {
				t.Errorf("against the capture's configuration: %v, replayed %q", res.Divergence, res.Replayed)
			}
			if tc.lax == "" {
				return
			}
			res, err = AsClient(ctxT(t), s, dial(t, stream.Endpoint{Addr: lax.Addr}, mqttclient.DialOptions{}), Options{Wait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if res.Divergence == nil || res.Divergence.String() != tc.lax {
				t.Errorf("against mosquitto's defaults: %v, replayed %q", res.Divergence, res.Replayed)
			}
		})
	}
}

// recorder keeps the records of connections it observes.
type recorder struct {
	mu   sync.Mutex
	recs []inspect.Record
}

func (r *recorder) observer(id int) stream.ConnObserver {
	o := &inspect.Observer{Emit: func(rec inspect.Record) { r.mu.Lock(); r.recs = append(r.recs, rec); r.mu.Unlock() }}
	return o.Open(&stream.Conn{ID: id})
}

func (r *recorder) session() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Session{Conn: 1}
	for _, rec := range r.recs {
		switch rec := rec.(type) {
		case *inspect.PacketRecord:
			s.Packets = append(s.Packets, rec)
		case *inspect.CloseRecord:
			s.Close = rec
		}
	}
	return s
}

// TestSelf: a session recorded live against the embedded broker (subscribe, QoS 1 and 2 to
// itself, an alias, unsubscribe, disconnect) replayed into a fresh embedded broker shows no
// divergence.
func TestSelf(t *testing.T) {
	b, err := proxy.StartEmbedded("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var rec recorder
	c, err := mqttclient.Dial(ctxT(t), b.Endpoint(), mqttclient.DialOptions{Dial: b.Dial}, rec.observer(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.Connect(ctx, &decode.Connect{ClientID: "self", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	step := func(p decode.Packet, until decode.Type) []decode.Packet {
		t.Helper()
		if err := c.Send(p); err != nil {
			t.Fatal(err)
		}
		if until == 0 {
			return nil
		}
		ps, err := c.Until(ctx, func(q decode.Packet) bool { return q.Type() == until })
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	step(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "self/#", QoS: 2}}}, decode.SUBACK)
	ps := step(&decode.Publish{QoS: 1, PacketID: 2, Topic: "self/a", Payload: []byte("one")}, decode.PUBLISH)
	ps = append(ps, step(&decode.Pingreq{}, decode.PINGRESP)...) // and the PUBACK
	for _, q := range ps {
		if pub, ok := q.(*decode.Publish); ok {
			step(&decode.Ack{PacketType: decode.PUBACK, PacketID: pub.PacketID}, 0)
		}
	}
	step(&decode.Publish{QoS: 2, PacketID: 3, Topic: "self/b", Payload: []byte("two")}, decode.PUBREC)
	// The PUBCOMP and the message back, in either order; then its QoS 2 exchange.
	step(&decode.Ack{PacketType: decode.PUBREL, PacketID: 3}, 0)
	var back *decode.Publish
	comp := false
	if _, err := c.Until(ctx, func(q decode.Packet) bool {
		if pub, ok := q.(*decode.Publish); ok {
			back = pub
		}
		comp = comp || q.Type() == decode.PUBCOMP
		return back != nil && comp
	}); err != nil {
		t.Fatal(err)
	}
	step(&decode.Ack{PacketType: decode.PUBREC, PacketID: back.PacketID}, decode.PUBREL)
	step(&decode.Ack{PacketType: decode.PUBCOMP, PacketID: back.PacketID}, 0)
	step(&decode.Unsubscribe{PacketID: 4, Filters: []string{"self/#"}}, decode.UNSUBACK)
	step(&decode.Disconnect{}, 0)
	if _, err := c.Next(ctx); err == nil {
		t.Fatal("open after DISCONNECT")
	}
	c.Close()
	s := rec.session()

	b2, err := proxy.StartEmbedded("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	res, err := AsClient(ctx, s, dial(t, b2.Endpoint(), mqttclient.DialOptions{Dial: b2.Dial}), Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Divergence != nil || len(res.Captured) < 6 || strings.Join(res.Captured, "|") == "" {
		t.Errorf("divergence %v\ncaptured %q\nreplayed %q", res.Divergence, res.Captured, res.Replayed)
	}
	if res.Sent != len(s.Packets)-len(res.Captured) {
		t.Errorf("sent %d of the %d client packets", res.Sent, len(s.Packets)-len(res.Captured))
	}
}

// session builds a captured session from frames, as inspection sees them.
func session(t *testing.T, frames ...struct {
	dir stream.Dir
	p   decode.Packet
}) *Session {
	var rec recorder
	obs := rec.observer(1)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i, f := range frames {
		b, err := decode.Encode(nil, f.p)
		if err != nil {
			t.Fatal(err)
		}
		obs.Data(f.dir, at.Add(time.Duration(i)*time.Millisecond), b)
	}
	obs.Close(at.Add(time.Second), stream.End{By: stream.Client, How: stream.FIN})
	return rec.session()
}

type frame = struct {
	dir stream.Dir
	p   decode.Packet
}

// TestRemap: the acknowledgement of the broker's PUBLISH carries the new session's packet
// identifier; an alias the captured broker granted and the new one does not becomes the topic;
// the Client Identifier is replaced when asked.
func TestRemap(t *testing.T) {
	s := session(t,
		frame{stream.C2S, &decode.Connect{ClientID: "dev", CleanStart: true, KeepAlive: 30}},
		frame{stream.S2C, &decode.Connack{Properties: decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 5)}}},
		frame{stream.C2S, &decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "r/#", QoS: 1}}}},
		frame{stream.S2C, &decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{1}}},
		frame{stream.C2S, &decode.Publish{QoS: 1, PacketID: 2, Topic: "r/x", Payload: []byte("a"), Properties: decode.Properties{decode.IntProp(decode.PropTopicAlias, 4)}}},
		frame{stream.S2C, &decode.Ack{PacketType: decode.PUBACK, PacketID: 2}},
		frame{stream.S2C, &decode.Publish{QoS: 1, PacketID: 77, Topic: "r/x", Payload: []byte("a")}},
		frame{stream.C2S, &decode.Ack{PacketType: decode.PUBACK, PacketID: 77}},
		frame{stream.C2S, &decode.Disconnect{}},
	)
	b, err := proxy.StartEmbedded("", nil) // grants no Topic Alias Maximum
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res, err := AsClient(ctxT(t), s, dial(t, b.Endpoint(), mqttclient.DialOptions{Dial: b.Dial}), Options{Wait: time.Second, ClientID: "dev-2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CONNECT #1: Client Identifier "dev" → "dev-2"`,
		`PUBLISH #5: Topic Alias 4 (granted 5 in the capture, 0 now) → topic "r/x"`,
		`PUBACK #8: packet identifier 77 → 1`,
	}
	if strings.Join(res.Remapped, "\n") != strings.Join(want, "\n") {
		t.Errorf("remapped:\n%s", strings.Join(res.Remapped, "\n"))
	}
	if res.Divergence != nil {
		t.Errorf("divergence %v; replayed %q", res.Divergence, res.Replayed)
	}
}

// TestSpeed: with a speed, packets go out at the captured gaps divided by it (on the given
// clock).
func TestSpeed(t *testing.T) {
	s := session(t,
		frame{stream.C2S, &decode.Connect{ClientID: "slow", CleanStart: true, KeepAlive: 30}},
		frame{stream.S2C, &decode.Connack{}},
		frame{stream.C2S, &decode.Pingreq{}},
		frame{stream.S2C, &decode.Pingresp{}},
		frame{stream.C2S, &decode.Disconnect{}},
	)
	// The frames are 1 ms apart: PINGREQ 2 ms after CONNECT, DISCONNECT 4 ms after.
	now := time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)
	var slept []time.Duration
	o := Options{Wait: time.Second, Speed: 0.001, Now: func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil }}
	b, err := proxy.StartEmbedded("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res, err := AsClient(ctxT(t), s, dial(t, b.Endpoint(), mqttclient.DialOptions{Dial: b.Dial}), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(slept) != 2 || slept[0] != 2*time.Second || slept[1] != 2*time.Second || res.Divergence != nil {
		t.Errorf("slept %v, divergence %v", slept, res.Divergence)
	}
}

// TestBothSides: a captured session served to itself: its broker side on a listener
// (AsServer), its device side connecting to it (AsClient). Neither diverges, and each sees
// the other's packets as captured.
func TestBothSides(t *testing.T) {
	for _, conn := range []int{5, 9, 17} {
		s := load(t, Selector{Conn: conn})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan *Result, 1)
		go func() {
			defer ln.Close()
			c, err := ln.Accept()
			if err != nil {
				served <- nil
				return
			}
			sc := mqttclient.NewServerSide(c, nil)
			res, err := AsServer(ctxT(t), s, sc, Options{Wait: time.Second})
			sc.Close()
			if err != nil {
				t.Error(err)
			}
			served <- res
		}()
		dc := dial(t, stream.Endpoint{Addr: ln.Addr().String()}, mqttclient.DialOptions{})
		dev, err := AsClient(ctxT(t), s, dc, Options{Wait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		dc.Close() // as replay does
		srv := <-served
		if srv == nil || dev.Divergence != nil || srv.Divergence != nil {
			t.Errorf("connection %d: device side %v, broker side %+v", conn, dev.Divergence, srv)
			continue
		}
		if srv.Sent != dev.Received || dev.Sent != srv.Received || len(srv.Captured) != dev.Sent {
			t.Errorf("connection %d: device sent %d got %d, broker sent %d got %d", conn, dev.Sent, dev.Received, srv.Sent, srv.Received)
		}
	}
}

// TestLargeFrames: a session whose broker delivered a 2 MiB message, more than the client takes
// by default, replays as captured: the limit is raised to the capture's largest frame.
func TestLargeFrames(t *testing.T) {
	big := bytes.Repeat([]byte("m"), 2<<20)
	s := session(t,
		frame{stream.C2S, &decode.Connect{ClientID: "big", CleanStart: true, KeepAlive: 30}},
		frame{stream.S2C, &decode.Connack{}},
		frame{stream.C2S, &decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "big/#"}}}},
		frame{stream.S2C, &decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{0}}},
		frame{stream.C2S, &decode.Publish{Topic: "big/x", Payload: big}},
		frame{stream.S2C, &decode.Publish{Topic: "big/x", Payload: big}},
		frame{stream.C2S, &decode.Disconnect{}},
	)
	b, err := proxy.StartEmbedded("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	res, err := AsClient(ctxT(t), s, dial(t, b.Endpoint(), mqttclient.DialOptions{Dial: b.Dial}), Options{Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Divergence != nil || res.Received != 3 {
		t.Errorf("received %d, divergence %v", res.Received, res.Divergence)
	}
}

// flood is a peer that answers everything and then never stops sending PINGRESP, up to sent
// packets, after which its connection fails.
type flood struct {
	v    decode.Version
	n    int
	sent int
}

func (f *flood) Write([]byte) error          { return nil }
func (f *flood) Version() decode.Version     { return f.v }
func (f *flood) SetVersion(v decode.Version) { f.v = v }
func (f *flood) Next(context.Context) (decode.Packet, error) {
	f.n++
	switch {
	case f.n == 1:
		return decode.Decode([]byte{0x20, 0x03, 0x00, 0x00, 0x00}, f.v), nil // CONNACK
	case f.n > f.sent:
		return nil, errors.New("the flood ended")
	}
	return decode.Decode([]byte{0xD0, 0x00}, f.v), nil // PINGRESP
}

// TestFloodingPeer: a peer that keeps sending after the captured session's last answer is read
// no further than the comparison looks (the captured answers and the window after them), not
// until it stops: it ends neither the replay's wait nor its memory otherwise.
func TestFloodingPeer(t *testing.T) {
	s := session(t,
		frame{stream.C2S, &decode.Connect{ClientID: "f", CleanStart: true, KeepAlive: 30}},
		frame{stream.S2C, &decode.Connack{}},
	)
	s.Close.End.By = stream.Server // the broker closed: the replay waits for its close
	peer := &flood{sent: 100_000}
	res, err := AsClient(ctxT(t), s, peer, Options{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 1+window || peer.n != 1+window {
		t.Errorf("received %d packets, read %d of the flood", res.Received, peer.n)
	}
	if d := res.Divergence; d == nil || d.Replayed != "PINGRESP" {
		t.Errorf("divergence %v", d)
	}
}
