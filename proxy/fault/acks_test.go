package fault

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

func ackFrame(t testing.TB, typ decode.Type, id uint16) []byte {
	return enc(t, &decode.Ack{Base: v5, PacketType: typ, PacketID: id})
}

var pingrespFrame = []byte{0xD0, 0x00}

// frameList names frames for messages: "PUBACK 1, PINGRESP".
func frameList(frames [][]byte) string {
	var s []string
	for _, b := range frames {
		p := decode5(b)
		if id, ok := decode.PacketID(p); ok && id != 0 {
			s = append(s, fmt.Sprintf("%s %d", p.Type(), id))
		} else {
			s = append(s, p.Type().String())
		}
	}
	return strings.Join(s, ", ")
}

func expectFrames(t *testing.T, step string, got [][]byte, want ...[]byte) {
	t.Helper()
	if len(got) != len(want) || !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("%s: sent %s\nwant %s", step, frameList(got), frameList(want))
	}
}

// did returns the Did of each fault applied.
func did(applied []Applied) []string {
	var s []string
	for _, a := range applied {
		s = append(s, a.Did)
	}
	return s
}

func TestDelay(t *testing.T) {
	p := newPipeline(t, inspect.View{}, nil, []string{"delay dir=s2c type=PUBACK d=2s"})
	ack1, ack2 := ackFrame(t, decode.PUBACK, 1), ackFrame(t, decode.PUBACK, 2)
	p.feed(stream.S2C, ack1)
	p.feed(stream.S2C, pingrespFrame)
	p.feed(stream.C2S, []byte{0xC0, 0x00}) // the other direction is not delayed
	expectFrames(t, "at once", p.out[stream.S2C], pingrespFrame)
	expectFrames(t, "the device's", p.out[stream.C2S], []byte{0xC0, 0x00})
	p.clock.Advance(time.Second)
	expectFrames(t, "after 1s", p.out[stream.S2C], pingrespFrame)
	p.clock.Advance(time.Second)
	expectFrames(t, "after 2s", p.out[stream.S2C], pingrespFrame, ack1)
	p.feed(stream.S2C, ack2)
	p.end()
	p.clock.Advance(time.Hour)
	expectFrames(t, "after the end", p.out[stream.S2C], pingrespFrame, ack1)
	want := []string{"PUBACK id 1 held, to be sent 2s later", "PUBACK id 1, delayed 2s: sent",
		"PUBACK id 2 held, to be sent 2s later", "PUBACK id 2, delayed 2s: never sent: the direction ended first"}
	if got := did(p.applied); !slices.Equal(got, want) {
		t.Errorf("reported %q\nwant %q", got, want)
	}
	if a := p.applied[1]; !a.Time.Equal(t0.Add(2*time.Second)) || a.After != len(ack1) || p.applied[3].After != 0 {
		t.Errorf("the delayed PUBACK reported at %v, %d bytes sent; the one never sent %d", a.Time, a.After, p.applied[3].After)
	}
}

// TestDelayJitter: with jitter the delay is d plus a part of jitter drawn from the seeded
// source: the same in two runs, within [d, d+jitter).
func TestDelayJitter(t *testing.T) {
	var waits []string
	for range 2 {
		p := newPipeline(t, inspect.View{}, nil, []string{"delay type=SUBACK d=1s jitter=1s"})
		p.feed(stream.S2C, enc(t, &decode.Suback{Base: v5, PacketID: 3, ReasonCodes: []decode.ReasonCode{0}}))
		p.clock.Advance(time.Second - time.Nanosecond)
		if len(p.out[stream.S2C]) != 0 {
			t.Fatal("sent before d")
		}
		p.clock.Advance(time.Second)
		if len(p.out[stream.S2C]) != 1 {
			t.Fatal("not sent within d+jitter")
		}
		waits = append(waits, p.applied[0].Did)
	}
	if waits[0] != waits[1] || waits[0] == "SUBACK id 3 held, to be sent 1s later" {
		t.Errorf("two seeded runs: %q", waits)
	}
}

func TestDuplicate(t *testing.T) {
	p := newPipeline(t, inspect.View{}, nil, []string{"duplicate dir=c2s type=PUBREL"})
	rel := ackFrame(t, decode.PUBREL, 9)
	p.feed(stream.C2S, rel)
	p.feed(stream.S2C, ackFrame(t, decode.PUBREL, 9))
	expectFrames(t, "device", p.out[stream.C2S], rel, rel)
	expectFrames(t, "broker", p.out[stream.S2C], rel)
	if len(p.applied) != 1 || p.applied[0].Did != "PUBREL id 9 sent twice" || p.applied[0].After != 2*len(rel) {
		t.Errorf("applied %+v", p.applied)
	}
	if _, err := Parse("duplicate type=PUBLISH", 1); err == nil {
		t.Error("duplicate took type=PUBLISH")
	}
}

func TestReorder(t *testing.T) {
	a1, a2, a3 := ackFrame(t, decode.PUBACK, 1), ackFrame(t, decode.PUBACK, 2), ackFrame(t, decode.PUBACK, 3)
	for _, tc := range []struct {
		name, rule string
		in, want   [][]byte
	}{
		{"after the next ack", "reorder type=PUBACK", [][]byte{a1, a2, pingrespFrame}, [][]byte{a2, a1, pingrespFrame}},
		{"after the next frame", "reorder type=PUBACK", [][]byte{a1, pingrespFrame, a2, a3}, [][]byte{pingrespFrame, a1, a3, a2}},
		{"after 2 frames", "reorder type=PUBACK frames=2", [][]byte{a1, pingrespFrame, a2, a3}, [][]byte{pingrespFrame, a2, a1}}, // a3 held
		{"once", "reorder type=PUBACK count=1", [][]byte{a1, a2, a3, pingrespFrame}, [][]byte{a2, a1, a3, pingrespFrame}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, inspect.View{}, nil, []string{tc.rule})
			for _, b := range tc.in {
				p.feed(stream.S2C, b)
			}
			expectFrames(t, "", p.out[stream.S2C], tc.want...)
		})
	}
	t.Run("held at the end", func(t *testing.T) {
		p := newPipeline(t, inspect.View{}, nil, []string{"reorder type=PUBACK"})
		p.feed(stream.S2C, a1)
		p.end()
		if d := did(p.applied); len(d) != 2 || d[1] != "PUBACK id 1 held for reordering never sent: the direction ended first" {
			t.Errorf("reported %q", d)
		}
	})
}

func pubFrame(t testing.TB, qos byte, id uint16) []byte { return pub(t, "a/b", qos, id, nil, "x") }

// TestHold: the broker's PUBACKs are held until receive_maximum of them are, so the device's
// in-flight count (as the inspection sees it) reaches its Receive Maximum; then all go in order.
func TestHold(t *testing.T) {
	live := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropReceiveMaximum, 3)})
	p := newPipeline(t, live.View(), live, []string{"hold dir=s2c release=receive_maximum"})
	var acks [][]byte
	for id := uint16(1); id <= 3; id++ {
		p.feed(stream.C2S, pubFrame(t, 1, id))
		if n := live.View().InFlight(stream.C2S); n != int(id) {
			t.Fatalf("in flight %d after PUBLISH %d", n, id)
		}
		acks = append(acks, ackFrame(t, decode.PUBACK, id))
		p.feed(stream.S2C, acks[id-1])
	}
	expectFrames(t, "released", p.out[stream.S2C], acks...)
	if n := live.View().InFlight(stream.C2S); n != 0 {
		t.Errorf("in flight %d once released", n)
	}
	want := []string{"PUBACK id 1 held (1 held, in flight 1)", "PUBACK id 2 held (2 held, in flight 2)", "PUBACK id 3 held, 3 held: all released in order"}
	if got := did(p.applied); !slices.Equal(got, want) {
		t.Errorf("reported %q\nwant %q", got, want)
	}
	if u := p.applied[2].Used; u != "receive_maximum = 3 with receive_maximum=3" {
		t.Errorf("used %q", u)
	}
	if slices.Contains(p.notes(), "MQTT-3.3.4-7") {
		t.Error("the device was not over the Receive Maximum, the inspection says it was")
	}
}

func TestHoldFor(t *testing.T) {
	p := newPipeline(t, inspect.View{}, nil, []string{"hold dir=s2c type=PUBACK,SUBACK for=5s"})
	a1, a2 := ackFrame(t, decode.PUBACK, 1), ackFrame(t, decode.PUBACK, 2)
	p.feed(stream.S2C, a1)
	p.clock.Advance(4 * time.Second)
	p.feed(stream.S2C, a2)
	p.feed(stream.S2C, pingrespFrame)
	expectFrames(t, "after 4s", p.out[stream.S2C], pingrespFrame)
	p.clock.Advance(time.Second)
	expectFrames(t, "after 5s", p.out[stream.S2C], pingrespFrame, a1, a2)
	a3 := ackFrame(t, decode.PUBACK, 3)
	p.feed(stream.S2C, a3) // a new batch, never released
	p.end()
	got := did(p.applied)
	if len(got) != 5 || got[2] != "2 held released after 5s: PUBACK id 1, PUBACK id 2" ||
		got[4] != "1 held never sent: the direction ended first: PUBACK id 3" {
		t.Errorf("reported %q", got)
	}
	if _, err := Parse("hold for=0s", 1); err == nil {
		t.Error("hold without a release took for=0s")
	}
}

// TestFlood: after the device's PUBLISH go receive_maximum+1 copies with Packet Identifiers
// not in use; the inspection, fed what went on, finds the device over the broker's Receive
// Maximum (MQTT-3.3.4-7). Once per connection.
func TestFlood(t *testing.T) {
	live := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropReceiveMaximum, 2)})
	p := newPipeline(t, live.View(), live, []string{"flood dir=c2s"})
	busy := pubFrame(t, 1, 65535) // in flight: the flood does not take its id
	p.feed(stream.C2S, busy)      // flooded itself (it is the first)
	out := p.out[stream.C2S]
	if len(out) != 4 || !bytes.Equal(out[0], busy) {
		t.Fatalf("sent %s", frameList(out))
	}
	for i, b := range out[1:] {
		q := decode5(b).(*decode.Publish)
		if q.QoS != 1 || q.Dup || q.PacketID != uint16(65534-i) || q.Topic != "a/b" || string(q.Payload) != "x" {
			t.Errorf("copy %d: %+v", i, q)
		}
	}
	if a := p.applied[0]; a.Used != "receive_maximum+1 = 3 with receive_maximum=2" ||
		a.Did != "PUBLISH id 65535 followed by 3 copies at QoS 1, Packet Identifiers 65534 down to 65532, with 0 in flight and a Receive Maximum of 2" {
		t.Errorf("applied %+v", a)
	}
	if !slices.Contains(p.notes(), "MQTT-3.3.4-7") {
		t.Errorf("the inspection did not find the device over the Receive Maximum: %v", p.notes())
	}
	p.feed(stream.C2S, pubFrame(t, 0, 0))
	if len(p.out[stream.C2S]) != 5 {
		t.Errorf("flooded twice")
	}

	p = newPipeline(t, inspect.View{}, nil, []string{"flood count=2 as_qos=2 type=PUBLISH"})
	p.feed(stream.S2C, pubFrame(t, 0, 0))
	out = p.out[stream.S2C]
	if len(out) != 3 || decode5(out[1]).(*decode.Publish).QoS != 2 || decode5(out[0]).(*decode.Publish).QoS != 0 {
		t.Errorf("as_qos=2 sent %s", frameList(out))
	}
}

// TestReuseID: a PUBLISH is given the Packet Identifier of one still in flight, and the
// inspection finds the identifier in use; with none in flight the PUBLISH passes unchanged.
func TestReuseID(t *testing.T) {
	live := negotiatedConn(t, nil)
	p := newPipeline(t, live.View(), live, []string{"reuse_id dir=c2s"})
	first, second := pubFrame(t, 1, 4), pubFrame(t, 2, 5)
	p.feed(stream.C2S, first)
	p.feed(stream.C2S, second)
	out := p.out[stream.C2S]
	if len(out) != 2 || !bytes.Equal(out[0], first) {
		t.Fatalf("sent %s", frameList(out))
	}
	if q := decode5(out[1]).(*decode.Publish); q.PacketID != 4 || q.QoS != 2 {
		t.Errorf("second PUBLISH sent as %+v", q)
	}
	if len(p.applied) != 1 || p.applied[0].Did != "PUBLISH id 5 sent with Packet Identifier 4, still in flight" {
		t.Errorf("applied %q", did(p.applied))
	}
	if !slices.Contains(p.notes(), "MQTT-2.2.1-3") {
		t.Errorf("the inspection did not find the identifier in use: %v", p.notes())
	}
}

func TestDupResend(t *testing.T) {
	live := negotiatedConn(t, nil)
	p := newPipeline(t, live.View(), live, []string{"dup_resend dir=c2s"})
	in := pubFrame(t, 1, 7)
	p.feed(stream.C2S, in)
	p.feed(stream.C2S, pubFrame(t, 0, 0))
	out := p.out[stream.C2S]
	if len(out) != 3 || !bytes.Equal(out[0], in) {
		t.Fatalf("sent %s", frameList(out))
	}
	q := decode5(out[1]).(*decode.Publish)
	if !q.Dup || q.PacketID != 7 || q.QoS != 1 || !bytes.Equal(out[1][1:], in[1:]) || out[1][0] != in[0]|0x08 {
		t.Errorf("resent % x, sent % x first", out[1], in)
	}
	if !slices.Contains(p.notes(), inspect.RuleRetransmit) {
		t.Errorf("the inspection did not see a retransmission: %v", p.notes())
	}

	p = newPipeline(t, inspect.View{}, nil, []string{"dup_resend type=PUBLISH d=3s"})
	p.feed(stream.S2C, in)
	expectFrames(t, "at once", p.out[stream.S2C], in)
	p.clock.Advance(3 * time.Second)
	if len(p.out[stream.S2C]) != 2 || !decode5(p.out[stream.S2C][1]).(*decode.Publish).Dup {
		t.Errorf("after 3s sent %s", frameList(p.out[stream.S2C]))
	}
}

func TestPubrelUnknown(t *testing.T) {
	live := negotiatedConn(t, nil)
	p := newPipeline(t, live.View(), live, []string{"pubrel_unknown dir=c2s"})
	busy := pubFrame(t, 2, 65535)
	p.feed(stream.C2S, busy)
	p.feed(stream.C2S, []byte{0xC0, 0x00})
	expectFrames(t, "", p.out[stream.C2S], busy, ackFrame(t, decode.PUBREL, 65534), []byte{0xC0, 0x00})
	if len(p.applied) != 1 || p.applied[0].Did != "PUBREL id 65534 sent after PUBLISH id 65535, for no PUBLISH" {
		t.Errorf("applied %q", did(p.applied))
	}
	if !slices.Contains(p.notes(), inspect.RulePubrelUnknown) {
		t.Errorf("the inspection did not find the PUBREL unknown: %v", p.notes())
	}
	// An identifier used before, and done with, is not taken either.
	live = negotiatedConn(t, nil)
	p = newPipeline(t, live.View(), live, []string{"pubrel_unknown dir=c2s type=PINGREQ"})
	p.feed(stream.C2S, pubFrame(t, 1, 65535))
	p.feed(stream.S2C, ackFrame(t, decode.PUBACK, 65535))
	p.feed(stream.C2S, []byte{0xC0, 0x00})
	if out := p.out[stream.C2S]; len(out) != 3 || decode5(out[2]).(*decode.Ack).PacketID != 65534 {
		t.Errorf("sent %s", frameList(out))
	}
	p = newPipeline(t, inspect.View{}, nil, []string{"pubrel_unknown id=42"})
	p.feed(stream.C2S, []byte{0xC0, 0x00})
	expectFrames(t, "id=42", p.out[stream.C2S], []byte{0xC0, 0x00}, ackFrame(t, decode.PUBREL, 42))
}

// TestFloodBounds: a count over the free identifiers sends as many as are free and says so; a
// count below 1 does nothing.
func TestFloodBounds(t *testing.T) {
	p := newPipeline(t, inspect.View{}, nil, []string{"flood count=70000 type=PUBLISH"})
	p.feed(stream.C2S, pubFrame(t, 1, 7))
	if n := len(p.out[stream.C2S]); n != 1+65534 {
		t.Errorf("sent %d frames, want the PUBLISH and 65534 copies", n)
	}
	if d := did(p.applied); len(d) != 1 || !strings.HasSuffix(d[0], "(70000 asked: no more identifiers are free)") {
		t.Errorf("reported %q", d)
	}
	// A large PUBLISH: the copies are bounded by their bytes (64 MiB), not only by identifiers.
	p = newPipeline(t, inspect.View{}, nil, []string{"flood count=300 type=PUBLISH"})
	p.feed(stream.C2S, pub(t, "a/b", 1, 7, nil, strings.Repeat("x", 512<<10)))
	if n := len(p.out[stream.C2S]); n != 1+127 {
		t.Errorf("sent %d frames of 512 KiB, want the PUBLISH and 127 copies (64 MiB)", n)
	}
	if d := did(p.applied); len(d) != 1 || !strings.HasSuffix(d[0], "(300 asked: copies are bounded to 64 MiB)") {
		t.Errorf("reported %q", d)
	}
	p = newPipeline(t, inspect.View{}, nil, []string{"flood count=in_flight-1"})
	p.feed(stream.C2S, pubFrame(t, 1, 7))
	if n := len(p.out[stream.C2S]); n != 1 || len(p.applied) != 0 {
		t.Errorf("count 0 sent %d frames, reported %q", n, did(p.applied))
	}
}

// TestDelayThroughProxy: on the proxy's clock (a fake one), the broker's PUBACK waits 2 s while
// the PINGRESP the device asked for after it passes; a PUBACK still waiting when the device
// leaves is never sent, and reported so.
func TestDelayThroughProxy(t *testing.T) {
	rs, err := ParseAll([]string{"delay dir=s2c type=PUBACK d=2s"})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan Applied, 8)
	clock := fakeclock.New(time.Unix(1000, 0))
	srv := serveProxy(t, proxy.Config{Clock: clock, Stages: (&Set{Rules: rs, Report: func(a Applied) { reports <- a }}).Stages})
	ctx, dev := connectDevice(t, srv, "delayed")
	report := func() string {
		t.Helper()
		select {
		case a := <-reports:
			return a.Did
		case <-ctx.Done():
			t.Fatal("no fault reported")
		}
		return ""
	}
	next := func() decode.Packet {
		t.Helper()
		p, err := dev.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	send := func(p decode.Packet) {
		t.Helper()
		if err := dev.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	send(&decode.Publish{Base: v5, Topic: "d/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if d := report(); d != "PUBACK id 1 held, to be sent 2s later" {
		t.Fatalf("reported %q", d)
	}
	send(&decode.Pingreq{Base: v5})
	if p := next(); p.Type() != decode.PINGRESP {
		t.Fatalf("got %v first, want PINGRESP", p.Type())
	}
	clock.Advance(2 * time.Second)
	if p, ok := next().(*decode.Ack); !ok || p.PacketType != decode.PUBACK || p.PacketID != 1 {
		t.Fatalf("got %+v, want PUBACK 1", p)
	}
	if d := report(); d != "PUBACK id 1, delayed 2s: sent" {
		t.Fatalf("reported %q", d)
	}
	send(&decode.Publish{Base: v5, Topic: "d/1", QoS: 1, PacketID: 2, Payload: []byte("y")})
	report()
	send(&decode.Disconnect{Base: v5})
	if d := report(); d != "PUBACK id 2, delayed 2s: never sent: the direction ended first" {
		t.Fatalf("reported %q", d)
	}
}
