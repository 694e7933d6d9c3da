package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
)

// reaction is what the device read after a fault: a DISCONNECT's reason code, or how the
// connection ended ("EOF", "reset").
func reaction(t *testing.T, fr *frameReader) string {
	t.Helper()
	c := fr.c
	buf := make([]byte, 4096)
	for {
		if f, err := fr.fr.Next(); err != nil {
			t.Fatalf("reading the reaction: %v", err)
		} else if f != nil {
			if d, ok := decode.Decode(f, decode.V5).(*decode.Disconnect); ok {
				return fmt.Sprintf("DISCONNECT 0x%02X", byte(d.ReasonCode))
			}
			continue // a PUBACK, say, before the reaction
		}
		n, err := c.Read(buf)
		fr.fr.Write(buf[:n])
		switch {
		case n > 0:
		case errors.Is(err, io.EOF):
			return "EOF"
		case errors.Is(err, syscall.ECONNRESET):
			return "reset"
		case err != nil:
			t.Fatalf("reading the reaction: %v", err)
		}
	}
}

// TestRunProxyFaultMalformedMosquitto: mosquitto's reaction to each malformed fault on the
// device's PUBLISH (or SUBSCRIBE). MQTT 5 [MQTT-4.13.1-1]: the receiver of a malformed packet or
// a protocol error closes the connection, and may send DISCONNECT 0x81 (malformed) or 0x82
// (protocol error) first. mosquitto 2.0.11 sends 0x81 for invalid UTF-8 in the topic, an
// unknown property identifier and reserved flag bits, and closes without a DISCONNECT for a
// 5-byte Remaining Length (its log says "protocol error"; the standard calls it malformed) and
// for a duplicated property (where 0x82 would say why). Closing with unread bytes makes its
// close a reset, passed on as one; either close is taken.
func TestRunProxyFaultMalformedMosquitto(t *testing.T) {
	for _, tc := range []struct {
		kind, types string
		want        string // "closed": EOF or reset, no DISCONNECT
	}{
		{"vbi5", "PUBLISH", "closed"},
		{"utf8", "PUBLISH", "DISCONNECT 0x81"},
		{"dup_property", "PUBLISH", "closed"},
		{"unknown_property", "PUBLISH", "DISCONNECT 0x81"},
		{"flags", "SUBSCRIBE", "DISCONNECT 0x81"},
		// The proxy closes after the half packet: mosquitto gets no more to react to.
		{"truncate", "PUBLISH", "closed"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			fs := startFaultSession(t, nil, "bad", fmt.Sprintf("malformed dir=c2s kind=%s type=%s name=bad", tc.kind, tc.types))
			var b []byte
			if tc.types == "SUBSCRIBE" {
				b, _ = decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/b", QoS: 1}}})
			} else {
				b, _ = decode.Encode(nil, &decode.Publish{Base: fs.v5, Topic: "a/b", QoS: 1, PacketID: 1,
					Properties: decode.Properties{decode.IntProp(decode.PropMessageExpiry, 60)}, Payload: []byte("hello")})
			}
			fs.c.Write(b)
			got := reaction(t, fs.frames)
			if got == "EOF" || got == "reset" {
				got = "closed"
			}
			if got != tc.want {
				t.Errorf("device saw %s, want %s", got, tc.want)
			}
			fs.c.Close()
			waitOut(t, fs.out, `"kind":"close"`)
			if err := fs.stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(fs.out.String(), `"kind":"fault"`) || !strings.Contains(fs.out.String(), `"rule":"bad"`) ||
				!strings.Contains(fs.out.String(), `"malformed":true`) {
				t.Error("no fault record saying it is malformed")
			}
		})
	}
}

// TestRunProxyFaultLengthMosquitto: a Remaining Length that disagrees with the bytes cannot be
// seen by the receiver: mosquitto takes a PUBLISH 1 byte short (its last payload byte then
// starts the next packet), or 1 byte long (the first byte of the next packet, a PINGREQ, ends
// it), acknowledges it and delivers the payload it read.
func TestRunProxyFaultLengthMosquitto(t *testing.T) {
	for _, tc := range []struct {
		by      string
		payload string
	}{
		{"-1", "hell"},
		{"+1", "hello\xC0"},
	} {
		t.Run(tc.by, func(t *testing.T) {
			fs := startFaultSession(t, nil, "len", "malformed dir=c2s kind=length by="+tc.by+" type=PUBLISH qos=1 name=len")
			sub, _ := decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/b", QoS: 0}}})
			fs.c.Write(sub)
			if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.SUBACK {
				t.Fatalf("got % x, want SUBACK", f)
			}
			b, _ := decode.Encode(nil, &decode.Publish{Base: fs.v5, Topic: "a/b", QoS: 1, PacketID: 2, Payload: []byte("hello")})
			fs.c.Write(b)
			fs.c.Write([]byte{0xC0, 0x00}) // PINGREQ
			var acked, delivered bool
			for !acked || !delivered {
				switch p := decode.Decode(fs.frames.next(t), decode.V5).(type) {
				case *decode.Ack:
					acked = p.PacketType == decode.PUBACK && p.PacketID == 2 && p.ReasonCode == 0
				case *decode.Publish:
					if string(p.Payload) != tc.payload {
						t.Fatalf("delivered %q, want %q", p.Payload, tc.payload)
					}
					delivered = true
				default:
					t.Fatalf("got %T %+v", p, p)
				}
			}
			fs.c.Close()
			if err := fs.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRunProxyFaultSlicerMosquitto: mosquitto takes a PUBLISH whose pieces are cut inside its
// 2-byte Remaining Length, 20 ms apart: it acknowledges it and delivers the same payload to the
// device's subscription.
func TestRunProxyFaultSlicerMosquitto(t *testing.T) {
	fs := startFaultSession(t, nil, "sliced", "slicer dir=c2s type=PUBLISH at=remaining_length delay=20ms name=cut")
	sub, _ := decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/b", QoS: 1}}})
	fs.c.Write(sub)
	if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.SUBACK {
		t.Fatalf("got % x, want SUBACK", f)
	}
	payload := bytes.Repeat([]byte("0123456789"), 30)
	b, _ := decode.Encode(nil, &decode.Publish{Base: fs.v5, Topic: "a/b", QoS: 1, PacketID: 2, Payload: payload})
	if b[1]&0x80 == 0 {
		t.Fatalf("the PUBLISH's Remaining Length is one byte: % x", b[:4])
	}
	fs.c.Write(b)
	var acked, got bool
	for !acked || !got {
		f := fs.frames.next(t)
		switch p := decode.Decode(f, decode.V5).(type) {
		case *decode.Ack:
			acked = p.PacketType == decode.PUBACK && p.PacketID == 2 && p.ReasonCode == 0
			if !acked {
				t.Fatalf("got %+v", p)
			}
		case *decode.Publish:
			if !bytes.Equal(p.Payload, payload) || p.Topic != "a/b" {
				t.Fatalf("delivered %q on %q", p.Payload, p.Topic)
			}
			got = true
			ack, _ := decode.Encode(nil, &decode.Ack{Base: fs.v5, PacketType: decode.PUBACK, PacketID: p.PacketID})
			fs.c.Write(ack)
		default:
			t.Fatalf("got % x", f)
		}
	}
	if err := fs.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fs.out.String(), "cut inside its 2-byte Remaining Length, 20ms apart") {
		t.Error("no fault record of the slicer")
	}
}

// TestRunProxyFaultReset: the device's SUBSCRIBE is answered by a TCP reset instead of the
// SUBACK, and the close record says the proxy reset the connection.
func TestRunProxyFaultReset(t *testing.T) {
	fs := startFaultSession(t, nil, "rst", "reset dir=s2c type=SUBACK name=rst")
	sub, _ := decode.Encode(nil, &decode.Subscribe{Base: fs.v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/b", QoS: 1}}})
	fs.c.Write(sub)
	if got := reaction(t, fs.frames); got != "reset" {
		t.Fatalf("device saw %s, want a reset", got)
	}
	waitOut(t, fs.out, `"kind":"close"`)
	if err := fs.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fs.out.String(), `"by":"proxy","reason":"reset by a stage: fault rst: connection reset at SUBACK id 1"`) {
		t.Errorf("close record not the proxy's reset:\n%s", fs.out.String())
	}
}

// TestPahoKeepAliveStalled: with mosquitto's PINGRESPs stalled, paho.golang v0.23.0 (keep
// alive 1 s) gives up on the connection and closes it.
func TestPahoKeepAliveStalled(t *testing.T) {
	fs := startFaultProxy(t, peer.StartMosquitto(t).Addr, "", "stall dir=s2c type=PINGRESP name=nopong")
	conn, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	clientErr := make(chan error, 4)
	cl := paho.NewClient(paho.ClientConfig{Conn: conn, OnClientError: func(err error) { clientErr <- err }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Connect(ctx, &paho.Connect{ClientID: "sleepy", KeepAlive: 1, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-clientErr:
		t.Logf("paho: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("paho did not give up on the connection")
	}
	waitOut(t, fs.out, `"kind":"close"`)
	if err := fs.stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(fs.records(t, "PINGREQ", "c2s")); n == 0 {
		t.Error("paho sent no PINGREQ")
	}
	if n := len(fs.records(t, "PINGRESP", "")); n != 0 {
		t.Errorf("%d PINGRESP reached paho", n)
	}
	if !strings.Contains(fs.out.String(), "PINGRESP stalled") {
		t.Error("no fault record of the stall")
	}
	if !strings.Contains(fs.out.String(), `"by":"client"`) {
		t.Errorf("close record not the client's:\n%s", fs.out.String())
	}
}
