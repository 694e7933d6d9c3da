package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqscope/mqscope/decode"
)

// sendAll encodes and writes packets on the session's connection.
func (fs *faultSession) sendAll(t *testing.T, ps ...decode.Packet) {
	t.Helper()
	for _, p := range ps {
		b, err := decode.Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// expectAcks reads the next frames and fails unless they are the acknowledgements want, each
// "TYPE id reason" ("PUBREC 65532 0x97").
func (fs *faultSession) expectAcks(t *testing.T, want ...string) {
	t.Helper()
	for i, w := range want {
		f := fs.frames.next(t)
		a, ok := decode.Decode(f, decode.V5).(*decode.Ack)
		if !ok {
			t.Fatalf("frame %d is % x, want %s", i+1, f, w)
		}
		if got := ackString(a); got != w {
			t.Fatalf("frame %d is %s, want %s", i+1, got, w)
		}
	}
}

func ackString(a *decode.Ack) string {
	return fmt.Sprintf("%s %d 0x%02X", a.PacketType, a.PacketID, byte(a.ReasonCode))
}

// recordWithID returns the record of type typ in direction dir with Packet Identifier id.
func (fs *faultSession) recordWithID(t *testing.T, typ, dir string, id int) map[string]any {
	t.Helper()
	for _, r := range fs.records(t, typ, dir) {
		if r["packet_id"] == float64(id) {
			return r
		}
	}
	t.Fatalf("no %s %s record with packet_id %d:\n%s", dir, typ, id, fs.out.String())
	return nil
}

// TestRunProxyFaultFlood: mosquitto 2.0.11 with max_inflight_messages 3 grants Receive Maximum
// 3. After the device's QoS 1 PUBLISH the proxy sends receive_maximum+1 = 4 copies with fresh
// Packet Identifiers. As QoS 2 copies, three wait for their PUBREL at the broker and the fourth is
// one too many: the standard has the receiver DISCONNECT with 0x93 Receive Maximum exceeded;
// mosquitto instead answers that PUBLISH with PUBREC 0x97 Quota exceeded and keeps the
// connection (asserted, so a mosquitto that changes shows up). As QoS 1 copies, mosquitto
// acknowledges each as it arrives and never holds more than one. The inspection finds the
// fourth QoS 2 copy over the Receive Maximum.
func TestRunProxyFaultFlood(t *testing.T) {
	for _, tc := range []struct {
		rule string
		qos2 bool
		want []string
	}{
		{"flood dir=c2s as_qos=2", true, []string{"PUBACK 1 0x10", "PUBREC 65535 0x00", "PUBREC 65534 0x00", "PUBREC 65533 0x00", "PUBREC 65532 0x97"}},
		{"flood dir=c2s", false, []string{"PUBACK 1 0x10", "PUBACK 65535 0x10", "PUBACK 65534 0x10", "PUBACK 65533 0x10", "PUBACK 65532 0x10"}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			fs := startFaultSession(t, []string{"max_inflight_messages 3"}, "flooder", tc.rule)
			if ack := decode.Decode(fs.connack, decode.V5).(*decode.Connack); ack.Properties == nil {
				t.Fatalf("CONNACK % x has no properties", fs.connack)
			} else if rm, _ := ack.Properties.Int(decode.PropReceiveMaximum); rm != 3 {
				t.Fatalf("mosquitto granted Receive Maximum %d, want 3", rm)
			}
			fs.sendAll(t, &decode.Publish{Base: fs.v5, Topic: "f/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
			fs.expectAcks(t, tc.want...)
			// No DISCONNECT: the connection goes on.
			fs.sendAll(t, &decode.Pingreq{Base: fs.v5})
			if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.PINGRESP {
				t.Fatalf("after the flood got % x, want PINGRESP", f)
			}
			waitOut(t, fs.out, `"type":"PINGRESP"`)
			// The QoS 2 copies stay in flight (the device sends no PUBREL): the fourth is over
			// the Receive Maximum whenever the broker's PUBACK of the device's PUBLISH passed,
			// the second never is. (Between, and for QoS 1 copies, it depends on when the
			// broker's acknowledgements pass the proxy.)
			for id, over := range map[int]bool{65534: false, 65532: true} {
				if r := fs.recordWithID(t, "PUBLISH", "c2s", id); tc.qos2 && hasNote(r, "MQTT-3.3.4-7", "error") != over {
					t.Errorf("PUBLISH %d over the Receive Maximum: %v, want %v", id, r["notes"], over)
				}
			}
			if !strings.Contains(fs.out.String(), `"used":"receive_maximum+1 = 4 with receive_maximum=3"`) {
				t.Errorf("fault record lacks what it used")
			}
		})
	}
}

// TestRunProxyFaultReuseID: the device's QoS 2 PUBLISH id 1 waits for its PUBREL; its next
// QoS 2 PUBLISH, id 2, reaches mosquitto with id 1. The standard has the receiver acknowledge
// it with PUBREC and not deliver a duplicate [MQTT-4.3.3-10]; mosquitto 2.0.11 answers PUBREC 1
// and replaces the stored message: on PUBREL 1 the subscriber gets the second payload and the
// first is lost. The device's PUBREL 2 gets PUBCOMP 2 Success from mosquitto (not 0x92, which
// it would be for an identifier it does not know). The inspection finds the identifier in use.
func TestRunProxyFaultReuseID(t *testing.T) {
	fs := startFaultSession(t, nil, "reuser", "reuse_id dir=c2s")
	fs.sendAll(t, &decode.Subscribe{Base: fs.v5, PacketID: 9, Subscriptions: []decode.Subscription{{Filter: "r/#", QoS: 2}}})
	if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.SUBACK {
		t.Fatalf("got % x, want SUBACK", f)
	}
	fs.sendAll(t, &decode.Publish{Base: fs.v5, Topic: "r/1", QoS: 2, PacketID: 1, Payload: []byte("first")})
	fs.expectAcks(t, "PUBREC 1 0x00")
	fs.sendAll(t, &decode.Publish{Base: fs.v5, Topic: "r/1", QoS: 2, PacketID: 2, Payload: []byte("second")})
	fs.expectAcks(t, "PUBREC 1 0x00")
	fs.sendAll(t, &decode.Ack{Base: fs.v5, PacketType: decode.PUBREL, PacketID: 1})
	f := fs.frames.next(t)
	if p, ok := decode.Decode(f, decode.V5).(*decode.Publish); !ok || string(p.Payload) != "second" {
		t.Fatalf("got % x, want the subscriber's PUBLISH of \"second\" (mosquitto 2.0.11 keeps the later one)", f)
	}
	fs.expectAcks(t, "PUBCOMP 1 0x00")
	fs.sendAll(t, &decode.Ack{Base: fs.v5, PacketType: decode.PUBREL, PacketID: 2})
	fs.expectAcks(t, "PUBCOMP 2 0x00")
	waitOut(t, fs.out, `"packet_id":2,"reason_code":0`)
	pubs := fs.records(t, "PUBLISH", "c2s")
	if len(pubs) != 2 || pubs[1]["packet_id"] != float64(1) || !hasNote(pubs[1], "MQTT-2.2.1-3", "error") || hasNote(pubs[0], "MQTT-2.2.1-3", "error") {
		t.Errorf("the reused identifier is not found in use: %v", pubs)
	}
	if !strings.Contains(fs.out.String(), "PUBLISH id 2 sent with Packet Identifier 1, still in flight") {
		t.Errorf("fault record missing")
	}
}

// TestRunProxyFaultPubrelUnknown: after the device's PINGREQ the proxy sends a PUBREL for an
// identifier the device never used (65535). mosquitto 2.0.11 answers PUBCOMP 65535 with Success,
// where the standard's reason for it is 0x92 Packet Identifier not found; the inspection warns
// of the PUBREL and of the PUBCOMP no PUBREL of the device's waited for.
func TestRunProxyFaultPubrelUnknown(t *testing.T) {
	fs := startFaultSession(t, nil, "releaser", "pubrel_unknown dir=c2s type=PINGREQ")
	fs.sendAll(t, &decode.Pingreq{Base: fs.v5})
	if f := fs.frames.next(t); decode.Type(f[0]>>4) != decode.PINGRESP {
		t.Fatalf("got % x, want PINGRESP", f)
	}
	fs.expectAcks(t, "PUBCOMP 65535 0x00")
	waitOut(t, fs.out, `"type":"PUBCOMP"`)
	if r := fs.recordWithID(t, "PUBREL", "c2s", 65535); !hasNote(r, "MQSCOPE-PUBREL-UNKNOWN", "warning") {
		t.Errorf("PUBREL record %v", r)
	}
	if r := fs.recordWithID(t, "PUBCOMP", "s2c", 65535); !hasNote(r, "MQSCOPE-ACK-UNKNOWN", "warning") {
		t.Errorf("PUBCOMP record %v", r)
	}
}

// TestPahoDelayedPuback: the broker's PUBACK reaches paho 1 s late while other frames pass:
// the message paho subscribed to, which mosquitto sent after the PUBACK, arrives first, and
// Publish returns, successfully, once the PUBACK does (paho's PUBLISH is id 2, its SUBSCRIBE
// took 1).
func TestPahoDelayedPuback(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-late", "delay dir=s2c type=PUBACK d=1s")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ps.cl.AddOnPublishReceived(func(pr paho.PublishReceived) (bool, error) {
		got <- string(pr.Packet.Payload)
		return true, nil
	})
	if _, err := ps.cl.Subscribe(ctx10s(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "late/#"}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "late/1", QoS: 1, Payload: []byte("hello")})
		done <- err
	}()
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("paho got %q", p)
		}
	case err := <-done:
		t.Fatalf("Publish returned (%v) before the message came back", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the message never came back")
	}
	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("Publish returned after %v, before the PUBACK's delay of 1s", waited)
	}
	// In the timeline: the fault when it held the PUBACK, and again right before the PUBACK
	// it sent late, which is marked with the rule.
	waitOut(t, ps.out, `"did":"PUBACK id 2, delayed 1s: sent"`)
	// The PUBACK's own record comes right after that fault record: wait for it too.
	if !ps.out.WaitFor(10*time.Second, func(s string) bool { return hasLine(s, `{"kind":"packet"`, `"type":"PUBACK"`, `"dir":"s2c"`) }) {
		t.Fatalf("no PUBACK record:\n%s", ps.out.String())
	}
	if !strings.Contains(ps.out.String(), `"did":"PUBACK id 2 held, to be sent 1s later"`) {
		t.Error("no fault record when the PUBACK was held")
	}
	if acks := ps.records(t, "PUBACK", "s2c"); len(acks) != 1 || acks[0]["fault"] != "#1 delay" {
		t.Errorf("PUBACK records %v, want the one sent late, marked", acks)
	}
}

// TestPahoDuplicatedPuback: paho.golang v0.23.0 gets each PUBACK twice. The first completes
// the publish; the second is for an identifier no longer in flight, which paho ignores (a
// debug line): no error, no disconnect, and its next publish (id 2) completes as usual. The
// inspection notes the second PUBACK as for no PUBLISH.
func TestPahoDuplicatedPuback(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-dup", "duplicate dir=s2c type=PUBACK")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "dup/1", QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitOut(t, ps.out, `"packet_id":2,`)
	if !ps.out.WaitFor(10*time.Second, func(s string) bool { return packetLines(s, "PUBACK") == 4 }) {
		t.Fatalf("PUBACK records: %d, want 4", len(ps.records(t, "PUBACK", "s2c")))
	}
	acks := ps.records(t, "PUBACK", "s2c")
	if acks[0]["packet_id"] != float64(1) || acks[1]["packet_id"] != float64(1) || noteWith(acks[1], "which no QoS 1 PUBLISH") == nil {
		t.Errorf("PUBACK records %v", acks)
	}
	select {
	case d := <-ps.disconnect:
		t.Errorf("paho got DISCONNECT %+v", d)
	default:
	}
	ps.errMu.Lock()
	defer ps.errMu.Unlock()
	if len(ps.clientErrs) != 0 {
		t.Errorf("paho reported %v", ps.clientErrs)
	}
}

// TestPahoHeldAcks: mosquitto grants Receive Maximum 3 and the proxy holds its PUBACKs until 3
// are held. paho.golang v0.23.0, asked for 6 QoS 1 publishes at once, sends 3, waits with 3 in
// flight while their PUBACKs are held, and sends the next 3 once the first PUBACKs are released:
// never over the Receive Maximum in the inspection, every publish completes.
func TestPahoHeldAcks(t *testing.T) {
	ps, err := startPaho(t, []string{"max_inflight_messages 3"}, "paho-held", "hold dir=s2c type=PUBACK release=receive_maximum")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "held/1", QoS: 1, Payload: []byte("x")})
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if !ps.out.WaitFor(10*time.Second, func(s string) bool { return packetLines(s, "PUBACK") == 6 }) {
		t.Fatalf("PUBACK records: %d, want 6", len(ps.records(t, "PUBACK", "s2c")))
	}
	pubs, acks := ps.records(t, "PUBLISH", "c2s"), ps.records(t, "PUBACK", "s2c")
	for _, p := range pubs {
		if hasNote(p, "MQTT-3.3.4-7", "error") {
			t.Errorf("paho went over the Receive Maximum: %v", p)
		}
	}
	// The fourth PUBLISH waits for a free slot: the first PUBACK released (paho may send it
	// while the proxy still writes the second and third).
	if len(pubs) != 6 || pubs[3]["index"].(float64) < acks[0]["index"].(float64) {
		t.Errorf("the fourth PUBLISH (record %v) went before the first PUBACK was released (%v)", pubs[3]["index"], acks[0]["index"])
	}
	if n := strings.Count(ps.out.String(), "3 held: all released in order"); n != 2 {
		t.Errorf("released %d times, want 2", n)
	}
}

// packetLines counts the packet records of type typ in JSON lines s (a fault record holds the
// type of the packet it altered too).
func packetLines(s, typ string) (n int) {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, `{"kind":"packet"`) && strings.Contains(l, `"type":"`+typ+`"`) {
			n++
		}
	}
	return n
}
