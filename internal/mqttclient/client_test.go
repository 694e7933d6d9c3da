package mqttclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// records collects what an inspect.Observer makes of the client's connection.
type records struct {
	mu  sync.Mutex
	all []inspect.Record
}

func (r *records) observer() *inspect.Observer {
	return &inspect.Observer{Emit: func(rec inspect.Record) { r.mu.Lock(); r.all = append(r.all, rec); r.mu.Unlock() }}
}

func (r *records) packets() []*inspect.PacketRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []*inspect.PacketRecord
	for _, rec := range r.all {
		if p, ok := rec.(*inspect.PacketRecord); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

func (r *records) close() *inspect.CloseRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.all {
		if c, ok := rec.(*inspect.CloseRecord); ok {
			return c
		}
	}
	return nil
}

func dialObserved(t *testing.T, e stream.Endpoint, o mqttclient.DialOptions, recs *records) *mqttclient.Client {
	t.Helper()
	var obs stream.ConnObserver
	if recs != nil {
		obs = recs.observer().Open(&stream.Conn{ID: 1, Transport: e.Transport})
	}
	c, err := mqttclient.Dial(ctxT(t), e, o, obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEmbedded: a QoS 1 round trip through the embedded broker, and the inspection of what
// went both ways, in order.
func TestEmbedded(t *testing.T) {
	b, err := proxy.StartEmbedded("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var recs records
	c := dialObserved(t, b.Endpoint(), mqttclient.DialOptions{Dial: b.Dial}, &recs)
	ctx := ctxT(t)
	ack, err := c.Connect(ctx, &decode.Connect{ClientID: "mqttclient-test", CleanStart: true, KeepAlive: 30})
	if err != nil || ack.ReasonCode != decode.Success {
		t.Fatalf("CONNACK %+v, %v", ack, err)
	}
	if err := c.Send(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "t/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Next(ctx); err != nil || p.Type() != decode.SUBACK {
		t.Fatalf("after SUBSCRIBE: %v, %v", p, err)
	}
	if err := c.Send(&decode.Publish{QoS: 1, PacketID: 2, Topic: "t/x", Payload: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	// The PUBACK and the message back, in either order.
	var got *decode.Publish
	acked := false
	if _, err := c.Until(ctx, func(p decode.Packet) bool {
		switch q := p.(type) {
		case *decode.Publish:
			got = q
		case *decode.Ack:
			acked = q.PacketType == decode.PUBACK && q.PacketID == 2
		}
		return got != nil && acked
	}); err != nil {
		t.Fatal(err)
	}
	if got.Topic != "t/x" || string(got.Payload) != "hello" || got.QoS != 1 {
		t.Errorf("message back %+v", got)
	}
	if err := c.Send(&decode.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, mqttclient.ErrClosed) {
		t.Errorf("after DISCONNECT: %v, want ErrClosed", err)
	}
	c.Close()

	var seq []string
	for _, p := range recs.packets() {
		seq = append(seq, p.Dir.Arrow()+p.Type().String())
	}
	if len(seq) != 8 || seq[0] != "→CONNECT" || seq[1] != "←CONNACK" || seq[2] != "→SUBSCRIBE" ||
		seq[3] != "←SUBACK" || seq[4] != "→PUBLISH" || seq[7] != "→DISCONNECT" {
		t.Errorf("inspected %v", seq)
	}
	if cl := recs.close(); cl == nil || cl.By() != "client" {
		t.Errorf("close record %+v", cl)
	}
}

// TestMosquittoBreach: bytes that break the announced Maximum Packet Size go out as they are,
// and the client reads the broker's DISCONNECT 0x95, then ErrClosed.
func TestMosquittoBreach(t *testing.T) {
	m := peer.StartMosquitto(t, "max_packet_size 200")
	var recs records
	c := dialObserved(t, stream.Endpoint{Transport: stream.TCP, Addr: m.Addr}, mqttclient.DialOptions{}, &recs)
	ctx := ctxT(t)
	ack, err := c.Connect(ctx, &decode.Connect{ClientID: "breach", CleanStart: true, KeepAlive: 30})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ack.Properties.Int(decode.PropMaximumPacketSize); v != 200 {
		t.Fatalf("CONNACK properties %+v", ack.Properties)
	}
	big, err := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "big", Payload: make([]byte, 250)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	p, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := p.(*decode.Disconnect); !ok || d.ReasonCode != decode.PacketTooLarge {
		t.Fatalf("broker answered %+v", p)
	}
	if _, err := c.Next(ctx); err == nil {
		t.Fatal("the connection is still open after DISCONNECT 0x95")
	}
	ps := recs.packets()
	if len(ps) != 4 || !ps[2].HasRule("MQTT-3.2.2-15") {
		t.Errorf("the inspection did not see the breach: %d packets", len(ps))
	}
}

// TestDeadline: Next gives up when its context ends and the connection stays usable.
func TestDeadline(t *testing.T) {
	m := peer.StartMosquitto(t)
	c := dialObserved(t, stream.Endpoint{Transport: stream.TCP, Addr: m.Addr}, mqttclient.DialOptions{}, nil)
	if _, err := c.Connect(ctxT(t), &decode.Connect{ProtocolLevel: 4, ClientID: "quiet", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if p, err := c.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a quiet connection: %v, %v", p, err)
	}
	if err := c.Send(&decode.Pingreq{}); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Next(ctxT(t)); err != nil || p.Type() != decode.PINGRESP {
		t.Fatalf("after the deadline: %v, %v", p, err)
	}
}

// TestTransports: TLS, WebSocket and WebSocket over TLS listeners of one mosquitto.
func TestTransports(t *testing.T) {
	cert, key, roots := peer.ServerCert(t, "broker.test")
	ports := map[stream.Transport]string{}
	var conf []string
	for _, tr := range []stream.Transport{stream.TLS, stream.WebSocket, stream.WSS} {
		addr := peer.FreeAddr(t)
		ports[tr] = addr
		_, port, _ := net.SplitHostPort(addr)
		conf = append(conf, "listener "+port+" 127.0.0.1")
		if tr != stream.TLS {
			conf = append(conf, "protocol websockets")
		}
		if tr.Secure() {
			conf = append(conf, "certfile "+cert, "keyfile "+key)
		}
	}
	peer.StartMosquitto(t, conf...)
	for _, addr := range ports {
		peer.WaitUp(t, addr)
	}
	for tr, addr := range ports {
		t.Run(tr.String(), func(t *testing.T) {
			e := stream.Endpoint{Transport: tr, Addr: addr, Path: "/mqtt"}
			c := dialObserved(t, e, mqttclient.DialOptions{TLS: &tls.Config{RootCAs: roots, ServerName: "broker.test"}}, nil)
			ack, err := c.Connect(ctxT(t), &decode.Connect{ClientID: "transport-" + tr.String(), CleanStart: true, KeepAlive: 30})
			if err != nil || ack.ReasonCode != decode.Success {
				t.Fatalf("CONNACK %+v, %v", ack, err)
			}
			if err := c.Send(&decode.Pingreq{}); err != nil {
				t.Fatal(err)
			}
			if p, err := c.Next(ctxT(t)); err != nil || p.Type() != decode.PINGRESP {
				t.Fatalf("PINGREQ answered with %v, %v", p, err)
			}
		})
	}
}
