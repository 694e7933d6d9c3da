package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// broker starts the named broker and returns its address.
func broker(t *testing.T, name string) string {
	t.Helper()
	switch name {
	case "embedded":
		b, err := StartEmbedded("127.0.0.1:0", t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.Addr()
	case "mosquitto":
		addr, _ := startMosquitto(t)
		return addr
	}
	t.Fatalf("unknown broker %q", name)
	return ""
}

// pubSub runs one subscriber and one publisher through dial, publishes n messages at each QoS
// and checks they all arrive in order with their payloads.
func pubSub(t *testing.T, dial func() net.Conn, n int) (payloads []string) {
	t.Helper()
	s := connectPaho(t, dial(), "sub")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mqscope/#", QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	p := connectPaho(t, dial(), "pub")
	var want []string
	for qos := byte(0); qos <= 2; qos++ {
		for i := range n {
			payload := fmt.Sprintf("qos%d message %d %s", qos, i, strings.Repeat("x", i*37%300))
			want = append(want, payload)
			if _, err := p.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("mqscope/q%d", qos), QoS: qos, Payload: []byte(payload)}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}
	got := s.wait(t, len(want))
	for i, m := range got {
		if i >= len(want) || string(m.Payload) != want[i] {
			t.Fatalf("message %d: got %q, want %q", i, m.Payload, want[i])
		}
	}
	if err := p.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	return want
}

// recordWriter keeps the records an Output writes.
type recordWriter struct {
	mu   sync.Mutex
	recs []inspect.Record
}

func (w *recordWriter) Write(r inspect.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recs = append(w.recs, r)
	return nil
}

func (w *recordWriter) Close() error { return nil }

func dialTCP(t testing.TB, addr string) func() net.Conn {
	return func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// TestForwardTransparent: every message arrives, and the bytes each side sent are the bytes the
// other received, with the embedded broker and with mosquitto.
func TestForwardTransparent(t *testing.T) {
	for _, name := range []string{"embedded", "mosquitto"} {
		t.Run(name, func(t *testing.T) {
			tp := startTap(t, broker(t, name))
			col := newCollector()
			rw := &recordWriter{}
			in := NewInspector(inspect.Options{}, inspect.NewOutput(rw, nil, nil, nil, 0), nil)
			srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: tp.addr()}, Observers: []stream.Observer{in, col}}) // in first: its close record is out when col sees the close
			dev := startTap(t, srv.Addr().String())                                                                                         // records what the devices sent and received
			want := pubSub(t, dialTCP(t, dev.addr()), 20)
			for i := range 2 {
				by, reason := col.waitClosed(t, i+1)
				t.Logf("conn %d closed by %s: %s", i+1, by, reason)
				if !strings.Contains(reason, "closed (EOF)") {
					t.Errorf("conn %d closed by %q: %q, want a normal close", i+1, by, reason)
				}
				wrote, read := dev.conn(i)
				toBroker, fromBroker := tp.conn(i)
				if !bytes.Equal(wrote, toBroker) {
					t.Errorf("conn %d: device sent %d bytes, broker got %d (equal prefix %v)", i+1, len(wrote), len(toBroker), bytes.HasPrefix(wrote, toBroker))
				}
				if !bytes.Equal(read, fromBroker) {
					t.Errorf("conn %d: broker sent %d bytes, device got %d", i+1, len(fromBroker), len(read))
				}
				col.mu.Lock()
				if cc := col.conns[i+1]; !bytes.Equal(cc.data[stream.C2S].Bytes(), wrote) || !bytes.Equal(cc.data[stream.S2C].Bytes(), fromBroker) {
					t.Errorf("conn %d: observers did not see exactly the forwarded bytes", i+1)
				}
				col.mu.Unlock()
			}
			if got := srv.Metrics().Packets(stream.C2S, decode.PUBLISH); got != 60 {
				t.Errorf("metrics: %d PUBLISH c2s, want 60", got)
			}
			// The inspect output tells the same story: every PUBLISH, both ways, with its payload.
			in.Flush()
			rw.mu.Lock()
			defer rw.mu.Unlock()
			var sent, delivered []string
			closes := 0
			for _, r := range rw.recs {
				switch r := r.(type) {
				case *inspect.PacketRecord:
					if p, ok := r.Packet.(*decode.Publish); ok {
						if r.Dir == stream.C2S && r.ClientID == "pub" {
							sent = append(sent, string(p.Payload))
						} else if r.Dir == stream.S2C && r.ClientID == "sub" {
							delivered = append(delivered, string(p.Payload))
						}
					}
				case *inspect.CloseRecord:
					closes++
				}
			}
			if !slices.Equal(sent, want) || !slices.Equal(delivered, want) {
				t.Errorf("inspect saw %d PUBLISH from the publisher and %d to the subscriber; want %d each, same payloads", len(sent), len(delivered), len(want))
			}
			if closes != 2 {
				t.Errorf("%d close records, want 2", closes)
			}
		})
	}
}

// TestUpstreamUnreachable: the device gets CONNACK Server unavailable in its own version.
func TestUpstreamUnreachable(t *testing.T) {
	dead := peer.FreeAddr(t) // nothing listens there
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: dead}, Observers: []stream.Observer{col}})

	t.Run("mqtt5", func(t *testing.T) {
		ack, err := pahoConnect(t, srv.Addr().String(), &paho.Connect{ClientID: "dev", KeepAlive: 30, CleanStart: true})
		if err == nil || ack == nil {
			t.Fatalf("connect succeeded or no CONNACK: %v %v", ack, err)
		}
		if ack.ReasonCode != 0x88 {
			t.Errorf("reason code %#x, want 0x88", ack.ReasonCode)
		}
		if ack.Properties == nil || !strings.Contains(ack.Properties.ReasonString, dead) {
			t.Errorf("reason string %+v does not name the upstream", ack.Properties)
		}
	})
	t.Run("mqtt311", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V311}, ProtocolName: "MQTT", ProtocolLevel: 4, CleanStart: true, KeepAlive: 30, ClientID: "dev311"})
		c.Write(connect)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got bytes.Buffer
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		want := []byte{0x20, 0x02, 0x00, 0x03} // CONNACK, no session, return code 3
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("got % x, want % x", got.Bytes(), want)
		}
	})
	for id := 1; id <= 2; id++ {
		by, reason := col.waitClosed(t, id)
		if by != "proxy" || !strings.Contains(reason, "unreachable") || !strings.Contains(reason, "Server unavailable") {
			t.Errorf("conn %d: close by %q: %q", id, by, reason)
		}
	}
}

// TestMosquittoClients: mosquitto_sub and mosquitto_pub through the proxy, MQTT 5 and 3.1.1,
// over TCP and TLS.
func TestMosquittoClients(t *testing.T) {
	pubBin := peer.Require(t, "mosquitto_pub")
	subBin := peer.Require(t, "mosquitto_sub")
	for _, tc := range []struct {
		name, ver string
		tls       bool
	}{
		{"mqttv5", "mqttv5", false},
		{"mqttv311", "mqttv311", false},
		{"tls-mqttv5", "mqttv5", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Upstream: Endpoint{Transport: stream.TCP, Addr: broker(t, "mosquitto")}}
			var extra []string
			if tc.tls {
				ca := newTestCA(t)
				cfg.Listen = Endpoint{Transport: stream.TLS, Addr: "127.0.0.1:0"}
				cfg.ListenTLS = ca.ServerConfig("localhost")
				extra = []string{"--cafile", filepath.Join(ca.Dir, CACertFile)}
			}
			col := newCollector()
			cfg.Observers = []stream.Observer{col}
			srv := startProxy(t, cfg)
			host, port, _ := net.SplitHostPort(srv.Addr().String())
			common := append([]string{"-h", host, "-p", port, "-V", tc.ver, "-q", "1"}, extra...)
			const n = 10
			sub := exec.Command(subBin, append(common, "-t", "mq/#", "-C", fmt.Sprint(n), "-W", "20")...)
			var out, serr bytes.Buffer
			sub.Stdout, sub.Stderr = &out, &serr
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			// mosquitto_sub subscribes asynchronously: publish once the broker's SUBACK has
			// gone through the proxy (connection 1 is mosquitto_sub's).
			col.waitFrame(t, 1, stream.S2C, decode.SUBACK)
			for i := range n {
				pub := exec.Command(pubBin, append(common, "-t", "mq/x", "-m", fmt.Sprintf("m%d", i))...)
				if b, err := pub.CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v %s", err, b)
				}
			}
			done := make(chan error, 1)
			go func() { done <- sub.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("mosquitto_sub: %v %s", err, serr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("mosquitto_sub did not get %d messages: %q", n, out.String())
			}
			lines := strings.Fields(out.String())
			if len(lines) != n {
				t.Fatalf("mosquitto_sub printed %q", out.String())
			}
			if !strings.HasPrefix(lines[0], "m") {
				t.Errorf("unexpected payload %q", lines[0])
			}
		})
	}
}
