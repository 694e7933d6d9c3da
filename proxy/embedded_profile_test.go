package proxy

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// rawClient speaks MQTT 5 over conn with packets built in code, so that it can break a limit
// on purpose.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fr   *decode.Framer
}

func (c *rawClient) send(p decode.Packet) {
	c.t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next packet; nil when the connection ends first.
func (c *rawClient) next() decode.Packet {
	c.t.Helper()
	buf := make([]byte, 4096)
	for {
		f, err := c.fr.Next()
		if err != nil {
			c.t.Fatal(err)
		}
		if f != nil {
			return decode.Decode(bytes.Clone(f), decode.V5)
		}
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.conn.Read(buf)
		if n > 0 {
			c.fr.Write(buf[:n])
			continue
		}
		if err != nil {
			return nil
		}
	}
}

func startProfiled(t *testing.T, p *inspect.Profile, connect *decode.Connect) (*rawClient, *decode.Connack) {
	t.Helper()
	b, err := StartEmbeddedProfile("", p, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	conn, err := b.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, fr: decode.NewFramer(0)}
	c.send(connect)
	ack, ok := c.next().(*decode.Connack)
	if !ok {
		t.Fatal("no CONNACK")
	}
	return c, ack
}

func intOf(ps decode.Properties, id decode.PropID) (uint32, bool) { return ps.Int(id) }

// The embedded broker grants a profile's limits in CONNACK.
func TestEmbeddedProfileGrants(t *testing.T) {
	p, err := inspect.LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	_, ack := startProfiled(t, p, &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 900, ClientID: "dev",
		Properties: decode.Properties{decode.IntProp(decode.PropSessionExpiry, 30), decode.IntProp(decode.PropReceiveMaximum, 7)}})
	for _, c := range []struct {
		name string
		id   decode.PropID
		want uint32
	}{
		{"Maximum Packet Size", decode.PropMaximumPacketSize, 131072},
		{"Topic Alias Maximum", decode.PropTopicAliasMaximum, 30},
		{"Server Keep Alive (900 clamped to 480)", decode.PropServerKeepAlive, 480},
		{"Session Expiry (30 raised to 600)", decode.PropSessionExpiry, 600},
		{"Receive Maximum (the client's)", decode.PropReceiveMaximum, 7},
	} {
		got, ok := intOf(ack.Properties, c.id)
		if !ok || got != c.want {
			t.Errorf("%s: CONNACK has %d (present %v), want %d", c.name, got, ok, c.want)
		}
	}
}

// The embedded broker enforces a profile's limits: each breach gets DISCONNECT with the
// standard's reason code, naming the profile's limit.
func TestEmbeddedProfileEnforces(t *testing.T) {
	qos0, no := 0, false
	p := &inspect.Profile{Name: "small", MaximumPacketSize: 200, MaximumQoS: &qos0, RetainAvailable: &no}
	connect := &decode.Connect{ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 60, ClientID: "dev"}
	for _, c := range []struct {
		name string
		pub  *decode.Publish
		want decode.ReasonCode
		text string
	}{
		{"packet one byte over", &decode.Publish{Topic: "t", Payload: make([]byte, 201-7)}, decode.PacketTooLarge, "packet of 201 bytes over the Maximum Packet Size of 200"},
		{"QoS 1 over 0", &decode.Publish{Topic: "t", QoS: 1, PacketID: 1}, decode.QoSNotSupported, "QoS 1 over the Maximum QoS of 0"},
		{"retain", &decode.Publish{Topic: "t", Retain: true}, decode.RetainNotSupported, "retained PUBLISH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, ack := startProfiled(t, p, connect)
			if v, _ := ack.Properties.Int(decode.PropMaximumPacketSize); v != 200 {
				t.Fatalf("Maximum Packet Size granted %d, want 200", v)
			}
			if v, ok := ack.Properties.Int(decode.PropMaximumQoS); !ok || v != 0 {
				t.Fatalf("Maximum QoS granted %d (present %v), want 0", v, ok)
			}
			if v, ok := ack.Properties.Int(decode.PropRetainAvailable); !ok || v != 0 {
				t.Fatalf("Retain Available granted %d (present %v), want 0", v, ok)
			}
			// Within the limits first (a 200-byte packet: 1 + 2 header, 3 topic, 1 properties, 193 body): the broker keeps the connection.
			cl.send(&decode.Publish{Topic: "t", Payload: make([]byte, 200-7)})
			cl.send(&decode.Pingreq{})
			if _, ok := cl.next().(*decode.Pingresp); !ok {
				t.Fatal("a PUBLISH of exactly 200 bytes was refused")
			}
			cl.send(c.pub)
			d, ok := cl.next().(*decode.Disconnect)
			if !ok {
				t.Fatalf("no DISCONNECT")
			}
			rs, _ := d.Properties.String(decode.PropReasonString)
			if d.ReasonCode != c.want || !bytes.Contains([]byte(rs), []byte(c.text)) {
				t.Fatalf("DISCONNECT %s %q, want %s with %q", d.ReasonCode, rs, c.want, c.text)
			}
			if cl.next() != nil {
				t.Fatal("the connection stayed open after DISCONNECT")
			}
		})
	}
}
