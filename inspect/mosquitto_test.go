package inspect

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// startMosquitto runs mosquitto on a free 127.0.0.1 port (never 1883) with the given extra
// configuration lines and returns its address.
func startMosquitto(t *testing.T, conf ...string) string {
	t.Helper()
	return peer.StartMosquitto(t, conf...).Addr
}

// rawClient is a TCP client that sends packets built in code and feeds everything it sends
// and receives to a Conn, as a proxy would.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	conn *Conn
	recs []*PacketRecord
}

func dialRaw(t *testing.T, addr string) *rawClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, conn: NewConn(1, nc.LocalAddr().String(), addr, Options{})}
}

func (c *rawClient) feed(d stream.Dir, b []byte) {
	for _, r := range c.conn.Feed(d, time.Now(), b) {
		if p, ok := r.(*PacketRecord); ok {
			c.recs = append(c.recs, p)
		}
	}
}

func (c *rawClient) send(p decode.Packet) *PacketRecord {
	c.t.Helper()
	b := enc(c.t, p)
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
	c.feed(stream.C2S, b)
	return c.recs[len(c.recs)-1]
}

// readMore reads what the broker sends next and feeds it.
func (c *rawClient) readMore() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.nc.Read(buf)
	if n > 0 {
		c.feed(stream.S2C, append([]byte(nil), buf[:n]...))
		return
	}
	c.t.Fatalf("reading: %v", err)
}

// expect reads until a packet of type typ arrives from the broker, or EOF.
func (c *rawClient) expect(typ decode.Type) *PacketRecord {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		for _, r := range c.recs {
			if r.Dir == stream.S2C && r.Type() == typ {
				return r
			}
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.feed(stream.S2C, append([]byte(nil), buf[:n]...))
			continue
		}
		if err == io.EOF {
			c.t.Fatalf("connection closed before %s", typ)
		}
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
	}
}

// TestMosquittoCauseLink breaks mosquitto's limits with a raw client and checks that the
// broker's answer is linked to the breaking packet.
func TestMosquittoCauseLink(t *testing.T) {
	addr := startMosquitto(t, "max_packet_size 200", "max_qos 1", "max_topic_alias 2", "retain_available false", "max_inflight_messages 2")
	for _, c := range []struct {
		name    string
		pub     *decode.Publish
		reason  decode.ReasonCode
		summary string // after "PUBLISH #3, N bytes, "
	}{
		{"too large", publish("mqscope/live/big", 0, 0, strings.Repeat("x", 250)), decode.PacketTooLarge,
			"over the 200-byte Maximum Packet Size granted in CONNACK"},
		{"qos 2", publish("mqscope/live/q2", 2, 1, "x"), decode.QoSNotSupported,
			"QoS 2, above the Maximum QoS 1 granted in CONNACK"},
		{"alias 3", publish("mqscope/live/a", 0, 0, "x", ip(decode.PropTopicAlias, 3)), decode.TopicAliasInvalid,
			"Topic Alias 3, above the maximum 2 granted in CONNACK"},
		{"retain", &decode.Publish{Topic: "mqscope/live/r", Retain: true, Payload: []byte("r")}, decode.RetainNotSupported,
			"RETAIN 1, though CONNACK said Retain Available 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(&decode.Connect{ClientID: "mqscope-live-" + strings.ReplaceAll(c.name, " ", "-"), KeepAlive: 30, CleanStart: true})
			ack := rc.expect(decode.CONNACK)
			clean(t, ack)
			if mps := rc.conn.Snapshot().Effective.C2S.MaximumPacketSize; mps != 200 {
				t.Fatalf("effective Maximum Packet Size %d, want mosquitto's 200", mps)
			}
			if c.name == "too large" {
				// The other limits mosquitto announces, as the effective values.
				want := Limits{ReceiveMaximum: 2, MaximumPacketSize: 200, TopicAliasMaximum: 2, MaximumQoS: 1,
					WildcardSubscriptionAvailable: true, SubscriptionIdentifiersAvailable: true, SharedSubscriptionAvailable: true}
				if got := rc.conn.Snapshot().Effective.C2S; got != want {
					t.Errorf("effective %+v, want %+v", got, want)
				}
			}
			pub := rc.send(c.pub)
			d := rc.expect(decode.DISCONNECT)
			if got := d.Packet.(*decode.Disconnect).ReasonCode; got != c.reason {
				t.Fatalf("mosquitto answered 0x%02X, want 0x%02X", byte(got), byte(c.reason))
			}
			n := note(t, d, RuleDisconnectError)
			want := fmt.Sprintf("PUBLISH #%d, %d bytes, %s", pub.Index, pub.Size(), c.summary)
			if n.Cause == nil || n.Cause.Index != pub.Index || n.Cause.Summary != want {
				t.Errorf("cause %+v, want %q", n.Cause, want)
			}
			if testing.Verbose() {
				for _, r := range rc.recs {
					fmt.Print(string(AppendText(nil, r, TextOptions{})))
				}
			}
		})
	}
}

// TestMosquittoReceiveMaximum sends more QoS 1 messages than mosquitto's Receive Maximum
// (max_inflight_messages 2) without waiting for PUBACK. The client breaks MQTT-3.3.4-7;
// mosquitto 2.0.11 does not enforce it (no DISCONNECT 0x93) and acknowledges all three, which
// is what mqscope shows: the finding on the client's third PUBLISH, and no cause link.
func TestMosquittoReceiveMaximum(t *testing.T) {
	addr := startMosquitto(t, "max_inflight_messages 2")
	rc := dialRaw(t, addr)
	rc.send(&decode.Connect{ClientID: "mqscope-live-inflight", KeepAlive: 30, CleanStart: true})
	rc.expect(decode.CONNACK)
	if rm := rc.conn.Snapshot().Effective.C2S.ReceiveMaximum; rm != 2 {
		t.Fatalf("Receive Maximum %d, want max_inflight_messages 2", rm)
	}
	rc.send(publish("mqscope/live/q1", 1, 1, "1"))
	rc.send(publish("mqscope/live/q1", 1, 2, "2"))
	third := rc.send(publish("mqscope/live/q1", 1, 3, "3"))
	note(t, third, "MQTT-3.3.4-7")
	for acks := 0; acks < 3; {
		acks = 0
		for _, r := range rc.recs {
			if r.Type() == decode.PUBACK {
				acks++
			}
		}
		if acks < 3 {
			rc.readMore()
		}
	}
	if st := rc.conn.Snapshot(); st.InFlightC2S != 0 {
		t.Errorf("in flight %d after three PUBACKs", st.InFlightC2S)
	}
}
