package inspect

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

func TestNegotiationDefaults(t *testing.T) {
	s := newSession(t, Options{})
	cr, ar := s.connect(nil, nil)
	clean(t, cr)
	clean(t, ar)
	if len(s.recs) != 3 {
		t.Fatalf("got %d records, want CONNECT, CONNACK, session", len(s.recs))
	}
	sr, ok := s.recs[2].(*SessionRecord)
	if !ok {
		t.Fatalf("third record is %T", s.recs[2])
	}
	e := sr.Effective
	if e.C2S != DefaultLimits || e.S2C != DefaultLimits {
		t.Errorf("effective limits %+v / %+v, want the defaults %+v", e.C2S, e.S2C, DefaultLimits)
	}
	if e.KeepAlive != 60 || e.KeepAliveFrom != "client" || e.SessionExpiryInterval != 0 || e.ClientID != "dev1" {
		t.Errorf("effective %+v", e)
	}
	st := s.c.Snapshot()
	if st.Phase != "connected" || !st.Negotiated || st.ClientID != "dev1" {
		t.Errorf("snapshot %+v", st)
	}
}

func TestNegotiationGranted(t *testing.T) {
	s := newSession(t, Options{})
	_, ar := s.connect(
		props(ip(decode.PropReceiveMaximum, 10), ip(decode.PropMaximumPacketSize, 1000), ip(decode.PropTopicAliasMaximum, 5), ip(decode.PropSessionExpiry, 100)),
		props(ip(decode.PropReceiveMaximum, 2), ip(decode.PropMaximumPacketSize, 200), ip(decode.PropTopicAliasMaximum, 2),
			ip(decode.PropMaximumQoS, 1), ip(decode.PropRetainAvailable, 0), ip(decode.PropServerKeepAlive, 30),
			ip(decode.PropSessionExpiry, 60), ip(decode.PropWildcardSubAvailable, 0), ip(decode.PropSubIDAvailable, 0),
			ip(decode.PropSharedSubAvailable, 0)))
	e := s.c.Snapshot().Effective
	wantC2S := Limits{ReceiveMaximum: 2, MaximumPacketSize: 200, TopicAliasMaximum: 2, MaximumQoS: 1}
	wantS2C := DefaultLimits
	wantS2C.ReceiveMaximum, wantS2C.MaximumPacketSize, wantS2C.TopicAliasMaximum = 10, 1000, 5
	if e.C2S != wantC2S {
		t.Errorf("c2s %+v, want %+v", e.C2S, wantC2S)
	}
	if e.S2C != wantS2C {
		t.Errorf("s2c %+v, want %+v", e.S2C, wantS2C)
	}
	if e.KeepAlive != 30 || e.KeepAliveFrom != "server" {
		t.Errorf("keep alive %d from %s, want the Server Keep Alive 30", e.KeepAlive, e.KeepAliveFrom)
	}
	if e.SessionExpiryInterval != 60 {
		t.Errorf("session expiry %d, want CONNACK's 60", e.SessionExpiryInterval)
	}
	note(t, ar, RuleServerKeepAlive)
	note(t, ar, RuleSessionGranted)
}

func TestMaximumPacketSizeCause(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropMaximumPacketSize, 200)))
	ok := s.c2s(publish("a/b", 0, 0, strings.Repeat("x", 150)))
	clean(t, ok)
	big := s.c2s(publish("a/b", 0, 0, strings.Repeat("x", 195)))
	n := note(t, big, "MQTT-3.2.2-15")
	if !strings.Contains(n.Text, "over the 200-byte Maximum Packet Size granted in CONNACK") || !strings.Contains(n.Text, "payload alone is 195 bytes") {
		t.Errorf("text %q", n.Text)
	}
	s.c2s(&decode.Pingreq{})
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.PacketTooLarge, HasReason: true})
	dn := note(t, d, RuleDisconnectError)
	if dn.Cause == nil || dn.Cause.Index != big.Index {
		t.Fatalf("cause %+v, want #%d", dn.Cause, big.Index)
	}
	want := "PUBLISH #4, 204 bytes, over the 200-byte Maximum Packet Size granted in CONNACK"
	if dn.Cause.Summary != want {
		t.Errorf("summary %q, want %q", dn.Cause.Summary, want)
	}
}

func TestMaximumPacketSizeServer(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(props(ip(decode.PropMaximumPacketSize, 100)), nil)
	r := s.s2c(publish("a/b", 0, 0, strings.Repeat("x", 96)))
	n := note(t, r, "MQTT-3.1.2-24")
	if !strings.Contains(n.Text, "count only the payload") {
		t.Errorf("text %q", n.Text)
	}
}

func TestTopicAliases(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropTopicAliasMaximum, 2)))
	alias := func(a uint32) decode.Property { return ip(decode.PropTopicAlias, a) }
	r := s.c2s(publish("sensors/t", 0, 0, "1", alias(1)))
	clean(t, r)
	r = s.c2s(publish("", 0, 0, "2", alias(1)))
	clean(t, r)
	if r.Topic != "sensors/t" {
		t.Errorf("resolved topic %q", r.Topic)
	}
	r = s.c2s(publish("", 0, 0, "3", alias(2)))
	note(t, r, RuleAliasUnknown)
	r = s.c2s(publish("", 0, 0, "6", alias(0)))
	note(t, r, "MQTT-3.3.2-8")
	r = s.c2s(publish("other", 0, 0, "5", alias(1)))
	note(t, r, RuleAliasRemap)
	r = s.c2s(publish("x", 0, 0, "4", alias(3)))
	note(t, r, "MQTT-3.3.2-9")
	// The server's aliases are bounded by CONNECT, which allowed none.
	r = s.s2c(publish("down", 0, 0, "7", alias(1)))
	note(t, r, "MQTT-3.1.2-27")
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.TopicAliasInvalid, HasReason: true})
	if n := note(t, d, RuleDisconnectError); n.Cause == nil || n.Cause.Index != 8 {
		t.Errorf("cause %+v, want the PUBLISH with alias 3 (#8)", n.Cause)
	}
	st := s.c.Snapshot()
	if st.AliasesC2S[1] != "other" || len(st.AliasesS2C) != 0 {
		t.Errorf("tables %v %v", st.AliasesC2S, st.AliasesS2C)
	}
	// Tables start empty on a new connection.
	s2 := newSession(t, Options{})
	s2.connect(nil, props(ip(decode.PropTopicAliasMaximum, 2)))
	note(t, s2.c2s(publish("", 0, 0, "x", alias(1))), RuleAliasUnknown)
}

func TestFlowControl(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropReceiveMaximum, 2)))
	clean(t, s.c2s(publish("a", 1, 1, "1")))
	clean(t, s.c2s(publish("a", 2, 2, "2")))
	third := s.c2s(publish("a", 1, 3, "3"))
	n := note(t, third, "MQTT-3.3.4-7")
	if !strings.Contains(n.Text, "Receive Maximum 2 granted in CONNACK") {
		t.Errorf("text %q", n.Text)
	}
	reuse := s.c2s(publish("a", 1, 1, "again"))
	note(t, reuse, "MQTT-2.2.1-3")
	dup := s.c2s(&decode.Publish{Topic: "a", QoS: 1, PacketID: 1, Dup: true, Payload: []byte("1")})
	note(t, dup, RuleRetransmit)
	clean(t, s.s2c(ack(decode.PUBACK, 1, 0)))
	note(t, s.s2c(ack(decode.PUBACK, 9, 0)), RuleAckUnknown)
	// QoS 2 exchange for id 2.
	clean(t, s.s2c(ack(decode.PUBREC, 2, 0)))
	clean(t, s.c2s(ack(decode.PUBREL, 2, 0)))
	clean(t, s.s2c(ack(decode.PUBCOMP, 2, 0)))
	note(t, s.c2s(ack(decode.PUBREL, 2, 0)), RulePubrelUnknown)
	clean(t, s.s2c(ack(decode.PUBACK, 3, 0)))
	if st := s.c.Snapshot(); st.InFlightC2S != 0 {
		t.Errorf("in flight %d", st.InFlightC2S)
	}
}

func TestReceiveMaximumCause(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropReceiveMaximum, 1)))
	s.c2s(publish("a", 1, 1, "1"))
	over := s.c2s(publish("a", 1, 2, "2"))
	note(t, over, "MQTT-3.3.4-7")
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.ReceiveMaximumExceeded, HasReason: true})
	if n := note(t, d, RuleDisconnectError); n.Cause == nil || n.Cause.Index != over.Index {
		t.Fatalf("cause %+v", n.Cause)
	}
	if st := s.c.Snapshot(); st.InFlightC2S != 2 {
		t.Errorf("in flight %d", st.InFlightC2S)
	}
}

func TestQoSAndRetain(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropMaximumQoS, 1), ip(decode.PropRetainAvailable, 0)))
	r := s.c2s(publish("a", 2, 1, "x"))
	note(t, r, "MQTT-3.2.2-11")
	p := publish("a", 0, 0, "x")
	p.Retain = true
	note(t, s.c2s(p), "MQTT-3.2.2-14")
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.QoSNotSupported, HasReason: true})
	if n := note(t, d, RuleDisconnectError); n.Cause == nil || n.Cause.Index != r.Index {
		t.Fatalf("cause %+v", n.Cause)
	}
}

func TestSessionExpiryDisconnect(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	d := s.c2s(&decode.Disconnect{HasReason: true, HasProperties: true, Properties: props(ip(decode.PropSessionExpiry, 3600))})
	note(t, d, RuleSessionExpiry0)

	s = newSession(t, Options{})
	s.connect(props(ip(decode.PropSessionExpiry, 10)), nil)
	d = s.c2s(&decode.Disconnect{HasReason: true, HasProperties: true, Properties: props(ip(decode.PropSessionExpiry, 3600))})
	clean(t, d)
	if got := s.c.Snapshot().Effective.SessionExpiryInterval; got != 3600 {
		t.Errorf("session expiry after DISCONNECT %d", got)
	}
	note(t, s.c2s(&decode.Pingreq{}), RuleAfterDisconnect)
}

func TestConnackRefusedCause(t *testing.T) {
	s := newSession(t, Options{})
	cr := s.c2s(&decode.Connect{ClientID: "dev1", HasUsername: true, Username: "bob", HasPassword: true, Password: []byte("hunter2")})
	ar := s.s2c(&decode.Connack{ReasonCode: decode.BadUserNameOrPassword})
	n := note(t, ar, RuleConnackRefused)
	if n.Cause == nil || n.Cause.Index != cr.Index || !strings.Contains(n.Cause.Summary, `user name "bob", password (redacted)`) {
		t.Fatalf("cause %+v", n.Cause)
	}
	if strings.Contains(n.Cause.Summary, "hunter2") {
		t.Fatal("password shown")
	}
	note(t, s.s2c(&decode.Pingresp{}), "MQTT-3.2.2-7")
	if ph := s.c.Snapshot().Phase; ph != "refused" {
		t.Errorf("phase %q", ph)
	}
}

func TestAckErrorCause(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	p := s.c2s(publish("secret/x", 1, 7, "x"))
	a := s.s2c(ack(decode.PUBACK, 7, decode.NotAuthorized))
	n := note(t, a, RuleAckError)
	if n.Cause == nil || n.Cause.Index != p.Index || !strings.Contains(n.Cause.Summary, `not authorized to publish to "secret/x"`) {
		t.Fatalf("cause %+v", n.Cause)
	}
}

func TestKeepAlive(t *testing.T) {
	s := newSession(t, Options{})
	s.c2s(&decode.Connect{ClientID: "d", KeepAlive: 10})
	s.s2c(&decode.Connack{})
	s.wait(12 * time.Second)
	r := s.c2s(&decode.Pingreq{})
	note(t, r, "MQTT-3.1.2-20")
	noNote(t, r, "MQTT-3.1.2-22")
	s.wait(16 * time.Second)
	r = s.c2s(&decode.Pingreq{})
	note(t, r, "MQTT-3.1.2-22")
	s.wait(16 * time.Second)
	d := s.s2c(&decode.Disconnect{ReasonCode: decode.KeepAliveTimeout, HasReason: true})
	n := note(t, d, RuleDisconnectError)
	if n.Cause == nil || n.Cause.Index != r.Index || !strings.Contains(n.Cause.Summary, "keep alive 10 s") {
		t.Fatalf("cause %+v", n.Cause)
	}
}

func TestRequestResponse(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	req := s.c2s(publish("svc/req", 0, 0, "q", decode.StrProp(decode.PropResponseTopic, "svc/resp/1"), decode.BinProp(decode.PropCorrelationData, []byte("c1"))))
	s.wait(20 * time.Millisecond)
	resp := s.s2c(publish("svc/resp/1", 0, 0, "a", decode.BinProp(decode.PropCorrelationData, []byte("c1"))))
	if resp.Response == nil || resp.Response.Request != req.Index || resp.Response.Latency != 21*time.Millisecond {
		t.Fatalf("response %+v", resp.Response)
	}
}

func TestOrder(t *testing.T) {
	s := newSession(t, Options{})
	note(t, s.c2s(&decode.Pingreq{}), "MQTT-3.1.0-1")
	s = newSession(t, Options{})
	s.c2s(&decode.Connect{ClientID: "x"})
	note(t, s.s2c(&decode.Pingresp{}), "MQTT-3.2.0-1")
	s.s2c(&decode.Connack{})
	note(t, s.s2c(&decode.Connack{}), "MQTT-3.2.0-2")
	note(t, s.c2s(&decode.Connect{ClientID: "x"}), "MQTT-3.1.0-2")
}

func TestAssignedClientID(t *testing.T) {
	s := newSession(t, Options{})
	s.c2s(&decode.Connect{CleanStart: true})
	note(t, s.s2c(&decode.Connack{}), "MQTT-3.2.2-16")
	s = newSession(t, Options{})
	s.c2s(&decode.Connect{CleanStart: true})
	ar := s.s2c(&decode.Connack{Properties: props(decode.StrProp(decode.PropAssignedClientID, "auto-1"))})
	clean(t, ar)
	if ar.ClientID != "auto-1" || s.c.Snapshot().ClientID != "auto-1" {
		t.Errorf("client id %q", ar.ClientID)
	}
}

func TestSubscribeAvailability(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, props(ip(decode.PropWildcardSubAvailable, 0), ip(decode.PropSharedSubAvailable, 0), ip(decode.PropSubIDAvailable, 0)))
	sub := s.c2s(&decode.Subscribe{PacketID: 1, Properties: props(ip(decode.PropSubscriptionID, 4)),
		Subscriptions: []decode.Subscription{{Filter: "a/#", QoS: 1}, {Filter: "$share/g/b", QoS: 0}}})
	note(t, sub, RuleWildcardUnavail)
	note(t, sub, RuleSharedUnavail)
	note(t, sub, RuleSubIDUnavail)
	sa := s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{decode.WildcardSubsNotSupported, decode.SharedSubsNotSupported}})
	var causes int
	for _, n := range sa.Notes {
		if n.Rule == RuleSubackError && n.Cause != nil && n.Cause.Index == sub.Index {
			causes++
		}
	}
	if causes != 2 {
		t.Fatalf("SUBACK notes: %s", notesText(sa))
	}
	note(t, s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{0}}), RuleAckUnknown)
}

func TestFeedAnySplit(t *testing.T) {
	var wire []byte
	wire = append(wire, enc(t, &decode.Connect{ClientID: "dev1", KeepAlive: 30})...)
	wire = append(wire, enc(t, publish("a/b", 1, 1, strings.Repeat("p", 300)))...)
	wire = append(wire, enc(t, &decode.Pingreq{})...)
	for _, step := range []int{1, 2, 3, 7, 64, len(wire)} {
		c := NewConn(1, "c", "s", Options{})
		var got []string
		for i := 0; i < len(wire); i += step {
			for _, r := range c.Feed(stream.C2S, t0, wire[i:min(i+step, len(wire))]) {
				got = append(got, r.(*PacketRecord).Type().String())
			}
		}
		if strings.Join(got, " ") != "CONNECT PUBLISH PINGREQ" {
			t.Errorf("step %d: %v", step, got)
		}
	}
}

func TestGap(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	b := enc(t, publish("a/b", 0, 0, strings.Repeat("p", 100)))
	s.c.Feed(stream.C2S, t0, b[:50])
	s.c.Gap(stream.C2S, t0, 40)
	// The rest of the lost packet, then a whole PINGREQ and a PUBLISH.
	recs := s.c.Feed(stream.C2S, t0, append(append(b[90:], enc(t, &decode.Pingreq{})...), enc(t, publish("c", 0, 0, "x"))...))
	// The lost packet's last bytes ("pppp...") read as the header of a 112-byte PUBCOMP: that
	// reading stays possible until the connection ends, and wins if more bytes complete it.
	if len(recs) != 0 {
		t.Fatalf("resynced at %s while an earlier reading was possible", recs[0].(*PacketRecord).Type())
	}
	recs = s.c.Finish(t0)
	if len(recs) == 0 {
		t.Fatal("no packet after the gap")
	}
	r := recs[0].(*PacketRecord)
	note(t, r, RuleCaptureGap)
	if r.Type() != decode.PINGREQ {
		t.Errorf("resynced at %s", r.Type())
	}
}

// TestLargeFrameLinear feeds one 2 MiB PUBLISH in 1,448-byte TCP segments: assembling it must
// cost a few times its size in allocations. A stream buffer grown by exactly each segment
// copied what it held every time: 1.4 GB here.
func TestLargeFrameLinear(t *testing.T) {
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "x"}))
	big := enc(t, publish("a", 0, 0, strings.Repeat("x", 2<<20)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var recs []Record
	for i := 0; i < len(big); i += 1448 {
		recs = append(recs, c.Feed(stream.C2S, t0, big[i:min(i+1448, len(big))])...)
	}
	runtime.ReadMemStats(&after)
	if len(recs) != 1 || recs[0].(*PacketRecord).Size() != len(big) {
		t.Fatalf("records %v", recs)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 4*uint64(len(big)) {
		t.Errorf("a %d-byte frame in 1,448-byte pieces allocated %d bytes", len(big), d)
	}
}

func TestMaxFrame(t *testing.T) {
	c := NewConn(1, "c", "s", Options{MaxFrame: 100})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "x"}))
	big := enc(t, publish("a", 0, 0, strings.Repeat("x", 500)))
	recs := c.Feed(stream.C2S, t0, big[:200])
	recs = append(recs, c.Feed(stream.C2S, t0, append(big[200:], enc(t, &decode.Pingreq{})...))...)
	if len(recs) != 1 {
		t.Fatalf("records %d", len(recs))
	}
	r := recs[0].(*PacketRecord)
	if r.Type() != decode.PINGREQ {
		t.Fatalf("got %s", r.Type())
	}
	note(t, r, RuleTooLarge)
}

func TestMidStreamVersion(t *testing.T) {
	c := NewConn(1, "c", "s", Options{})
	c.MidStream()
	// An MQTT 3.1.1 SUBACK is malformed as MQTT 5 and teaches the version.
	p := &decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{1}}
	p.Version = decode.V311
	recs := c.Feed(stream.S2C, t0, enc(t, p))
	r := recs[0].(*PacketRecord)
	if r.Version != decode.V311 {
		t.Errorf("version %d", r.Version)
	}
	note(t, r, RuleMidStream)
}

func TestCloseRecord(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c2s(publish("a", 0, 0, "x"))
	s.c2s(&decode.Disconnect{})
	cr := s.c.Close(s.now, closeEnd("client", ""))
	if cr == nil || cr.Reason() != "client sent DISCONNECT 0x00 Normal disconnection" {
		t.Fatalf("close %+v", cr)
	}
	if cr.State.Packets["PUBLISH"] != 1 || cr.State.PacketsC2S != 3 || cr.State.PacketsS2C != 1 {
		t.Errorf("counts %+v", cr.State)
	}
	if s.c.Close(s.now, closeEnd("client", "")) != nil {
		t.Error("second Close returned a record")
	}
}

func TestSnapshotConcurrent(t *testing.T) {
	s := newSession(t, Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = s.c.Snapshot()
		}
	}()
	s.connect(nil, props(ip(decode.PropTopicAliasMaximum, 5)))
	for i := range 200 {
		s.c2s(publish("a", 0, 0, "x", ip(decode.PropTopicAlias, uint32(i%5+1))))
	}
	<-done
}

func TestDecoderFindingsMapped(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	sub := s.c2s(&decode.Subscribe{PacketID: 1, Properties: props(ip(decode.PropSubscriptionID, 0)), Subscriptions: []decode.Subscription{{Filter: "a"}}})
	note(t, sub, RuleSubIDZero)
	bad := s.c2s(publish("a", 1, 2, "\xff", ip(decode.PropPayloadFormat, 1)))
	note(t, bad, RulePayloadUTF)
	a := s.s2c(ack(decode.PUBACK, 2, decode.PayloadFormatInvalid))
	if n := note(t, a, RuleAckError); n.Cause == nil || n.Cause.Index != bad.Index {
		t.Errorf("cause %+v", n.Cause)
	}
	note(t, s.c2s(publish("a/+", 0, 0, "x")), "MQTT-3.3.2-2")
	note(t, s.c2s(&decode.Subscribe{PacketID: 3, Subscriptions: []decode.Subscription{{Filter: "$share//a"}}}), "MQTT-4.8.2-1")
}

func TestSessionTakeover(t *testing.T) {
	reg := NewSessions()
	old := NewConn(1, "c1", "s", Options{Sessions: reg})
	nw := NewConn(2, "c2", "s", Options{Sessions: reg})
	old.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "dev", KeepAlive: 60}))
	old.Feed(stream.S2C, t0, enc(t, &decode.Connack{}))
	recs := nw.Feed(stream.C2S, t0.Add(time.Second), enc(t, &decode.Connect{ClientID: "dev", KeepAlive: 60}))
	n := note(t, recs[0].(*PacketRecord), RuleTakeover)
	if !strings.Contains(n.Text, "connection 1") || strings.Contains(n.Text, "resumes") {
		t.Errorf("text %q", n.Text)
	}
	// It resumes the session only if CONNACK says Session Present.
	recs = nw.Feed(stream.S2C, t0.Add(time.Second), enc(t, &decode.Connack{SessionPresent: true}))
	if n := note(t, recs[0].(*PacketRecord), RuleTakeover); !strings.Contains(n.Text, "resumes the session that connection 1 held") {
		t.Errorf("CONNACK: %q", n.Text)
	}
	recs = old.Feed(stream.S2C, t0.Add(time.Second+time.Millisecond), enc(t, &decode.Disconnect{ReasonCode: decode.SessionTakenOver, HasReason: true}))
	n = note(t, recs[0].(*PacketRecord), RuleTakenOver)
	if n.Cause == nil || n.Cause.Conn != 2 || n.Cause.Index != 1 {
		t.Errorf("cause %+v", n.Cause)
	}
	// MQTT 3.1.1: the old connection just closes.
	reg = NewSessions()
	a := NewConn(1, "c1", "s", Options{Sessions: reg})
	b := NewConn(2, "c2", "s", Options{Sessions: reg})
	c311 := &decode.Connect{ClientID: "dev", KeepAlive: 60}
	c311.Version = decode.V311
	a.Feed(stream.C2S, t0, enc(t, c311))
	b.Feed(stream.C2S, t0.Add(time.Second), enc(t, c311))
	cr := a.Close(t0.Add(2*time.Second), closeEnd("server", ""))
	var found bool
	for _, n := range cr.Notes {
		if n.Rule == RuleTakenOver && n.Cause != nil && n.Cause.Conn == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("close notes %+v", cr.Notes)
	}
}

func TestAuthExchange(t *testing.T) {
	method := decode.StrProp(decode.PropAuthMethod, "SCRAM-SHA-1")
	s := newSession(t, Options{})
	s.c2s(&decode.Connect{ClientID: "d", Properties: props(method, decode.BinProp(decode.PropAuthData, []byte("client-first")))})
	note(t, s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a"}}}), "MQTT-3.1.2-30")
	clean(t, s.s2c(&decode.Auth{ReasonCode: decode.ContinueAuthentication, HasReason: true, HasProperties: true, Properties: props(method)}))
	clean(t, s.c2s(&decode.Auth{ReasonCode: decode.ContinueAuthentication, HasReason: true, HasProperties: true, Properties: props(method)}))
	note(t, s.s2c(&decode.Auth{ReasonCode: decode.ContinueAuthentication, HasReason: true, HasProperties: true,
		Properties: props(decode.StrProp(decode.PropAuthMethod, "PLAIN"))}), "MQTT-4.12.0-5")
	note(t, s.s2c(&decode.Auth{ReasonCode: decode.Success, HasReason: true, HasProperties: true, Properties: props(method)}), "MQTT-4.12.0-2")
	ack := s.s2c(&decode.Connack{})
	note(t, ack, "MQTT-4.12.0-5") // CONNACK must repeat the method
	if n := note(t, ack, RuleAuthExchange); !strings.Contains(n.Text, `"SCRAM-SHA-1" completed after 4 AUTH packets`) {
		t.Errorf("%q", n.Text)
	}
	if got := s.c.Snapshot().Effective.AuthenticationMethod; got != "SCRAM-SHA-1" {
		t.Errorf("effective method %q", got)
	}
	clean(t, s.c2s(&decode.Auth{ReasonCode: decode.ReAuthenticate, HasReason: true, HasProperties: true, Properties: props(method)}))

	s = newSession(t, Options{})
	s.connect(nil, nil)
	note(t, s.s2c(&decode.Auth{ReasonCode: decode.ContinueAuthentication, HasReason: true, HasProperties: true, Properties: props(method)}), "MQTT-4.12.0-6")
	note(t, s.c2s(&decode.Auth{ReasonCode: decode.ReAuthenticate, HasReason: true, HasProperties: true, Properties: props(method)}), "MQTT-4.12.0-7")
}

func TestUseColor(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if UseColor(f) {
		t.Error("colour for a file")
	}
	t.Setenv("NO_COLOR", "1")
	if UseColor(os.Stdout) {
		t.Error("colour with NO_COLOR")
	}
}

// FuzzConn feeds arbitrary bytes, split anywhere, to both directions: inspection never panics
// and every record renders.
func FuzzConn(f *testing.F) {
	f.Add(enc(f, &decode.Connect{ClientID: "a", KeepAlive: 10}), enc(f, &decode.Connack{}), uint8(3))
	f.Add(enc(f, publish("a", 1, 1, "x", ip(decode.PropTopicAlias, 1))), enc(f, ack(decode.PUBACK, 1, decode.NotAuthorized)), uint8(1))
	f.Add([]byte{0x30, 0x02, 0x00, 0x00, 0xe0, 0x00}, []byte{0xe0, 0x01, 0x95}, uint8(2))
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, step uint8) {
		n := int(step%16) + 1
		c := NewConn(1, "c", "s", Options{MaxFrame: 1 << 16})
		var recs []Record
		for i := 0; i < max(len(c2s), len(s2c)); i += n {
			if i < len(c2s) {
				recs = append(recs, c.Feed(stream.C2S, t0, c2s[i:min(i+n, len(c2s))])...)
			}
			if i < len(s2c) {
				recs = append(recs, c.Feed(stream.S2C, t0, s2c[i:min(i+n, len(s2c))])...)
			}
			if i == n {
				c.Gap(stream.C2S, t0, 3)
			}
		}
		recs = append(recs, c.Close(t0, stream.End{}))
		for _, r := range recs {
			AppendJSON(nil, r, JSONOptions{})
			AppendText(nil, r, TextOptions{})
		}
	})
}

// TestGapLinear feeds bytes that look like headers of 64 KiB frames after a gap, in TCP-sized
// pieces: resynchronisation must stay linear (each offset is scanned once), then find the next
// real packet.
func TestGapLinear(t *testing.T) {
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "x"}))
	c.Gap(stream.C2S, t0, 100)
	junk := make([]byte, 256<<10)
	for i := range junk {
		junk[i] = []byte{0x30, 0x80, 0x80, 0x04}[i%4] // PUBLISH headers announcing 65540-byte frames
	}
	start := time.Now()
	for i := 0; i < len(junk); i += 1460 {
		if recs := c.Feed(stream.C2S, t0, junk[i:min(i+1460, len(junk))]); len(recs) != 0 {
			t.Fatalf("resynced inside junk at %d: %s", i, recs[0].(*PacketRecord).Type())
		}
	}
	recs := c.Feed(stream.C2S, t0, append([]byte{0xff, 0xff, 0xff}, enc(t, &decode.Pingreq{})...))
	// The junk's last headers announce frames still possible: the PINGREQ comes at the end.
	recs = append(recs, c.Finish(t0)...)
	if len(recs) != 1 || recs[0].(*PacketRecord).Type() != decode.PINGREQ {
		t.Fatalf("records %v", recs)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("resync took %v", d)
	}
}

func TestKeepAliveAtClose(t *testing.T) {
	c311 := &decode.Connect{ClientID: "d", KeepAlive: 10}
	c311.Version = decode.V311
	s := newSession(t, Options{})
	s.c2s(c311)
	ack := &decode.Connack{}
	ack.Version = decode.V311
	s.s2c(ack)
	cr := s.c.Close(s.now.Add(16*time.Second), closeEnd("server", ""))
	if len(cr.Notes) == 0 || !strings.Contains(cr.Notes[0].Text, "keep alive timeout") {
		t.Errorf("close notes %+v", cr.Notes)
	}
}

// TestMidStreamResync starts inside a packet: the bytes before the first whole packet are
// skipped with a note, in both protocol versions.
func TestMidStreamResync(t *testing.T) {
	for _, v := range []decode.Version{decode.V5, decode.V311} {
		c := NewConn(1, "c", "s", Options{})
		c.MidStream()
		p := publish("sensors/t", 1, 9, "21.5")
		p.Version = v
		first := enc(t, p)
		second := enc(t, p)
		a := &decode.Ack{PacketType: decode.PUBACK, PacketID: 9}
		a.Version = v
		recs := c.Feed(stream.C2S, t0, append(first[5:], second...))
		// The payload "21.5" of the first reads as the header of a 49-byte PUBLISH, possible
		// until no more bytes come.
		if len(recs) != 0 {
			t.Fatalf("v%d: resynced while an earlier reading was possible", v)
		}
		recs = append(recs, c.Finish(t0)...)
		recs = append(recs, c.Feed(stream.S2C, t0, enc(t, a))...)
		if len(recs) != 2 {
			t.Fatalf("v%d: %d records", v, len(recs))
		}
		r := recs[0].(*PacketRecord)
		if r.Type() != decode.PUBLISH || r.Topic != "sensors/t" || r.Version != v {
			t.Errorf("v%d: %s %q v%d", v, r.Type(), r.Topic, r.Version)
		}
		if n := note(t, r, RuleCaptureGap); !strings.Contains(n.Text, fmt.Sprintf("%d bytes", len(first)-5)) {
			t.Errorf("v%d: %q", v, n.Text)
		}
		clean(t, recs[1].(*PacketRecord))
	}
	// Starting on a boundary skips nothing.
	c := NewConn(1, "c", "s", Options{})
	c.MidStream()
	recs := c.Feed(stream.C2S, t0, enc(t, &decode.Pingreq{}))
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	noNote(t, recs[0].(*PacketRecord), RuleCaptureGap)
}

// TestConcurrentFeed feeds the two directions from two goroutines, as a proxy does.
func TestConcurrentFeed(t *testing.T) {
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "x"}))
	c.Feed(stream.S2C, t0, enc(t, &decode.Connack{}))
	done := make(chan int)
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		go func() {
			n := 0
			for range 300 {
				n += len(c.Feed(d, t0, enc(t, publish("a", 0, 0, "x"))))
			}
			done <- n
		}()
	}
	if n := <-done + <-done; n != 600 {
		t.Errorf("%d records", n)
	}
	if st := c.Snapshot(); st.Packets["PUBLISH"] != 600 {
		t.Errorf("%v", st.Packets)
	}
}

func TestUnfinishedAtClose(t *testing.T) {
	pub := enc(t, publish("a/b", 1, 7, strings.Repeat("p", 20)))
	for _, tc := range []struct {
		name      string
		by        string
		feed      func(c *Conn)
		level     decode.Level
		want      []string // each in one note's text, in order
		wantRules []string
	}{
		{name: "inside a PUBLISH, the client closed", by: "client-eof",
			feed:  func(c *Conn) { c.Feed(stream.C2S, t0, pub[:9]) },
			level: decode.LevelWarning, want: []string{fmt.Sprintf("connection ended inside a PUBLISH from the client: 9 of its %d bytes arrived", len(pub))}},
		{name: "inside a SUBACK, the capture ended", by: "unknown",
			feed:  func(c *Conn) { c.Feed(stream.S2C, t0, []byte{0x90, 0x04, 0x00}) },
			level: decode.LevelInfo, want: []string{"capture ended inside a SUBACK from the server: 3 of its 6 bytes arrived"}},
		{name: "inside the Remaining Length", by: "server-reset",
			feed:  func(c *Conn) { c.Feed(stream.C2S, t0, []byte{0x30, 0x80}) },
			level: decode.LevelWarning, want: []string{"inside a packet from the client: 2 bytes arrived, not a whole fixed header"}},
		{name: "a gap, then nothing", by: "unknown",
			feed: func(c *Conn) { c.Gap(stream.S2C, t0, 30) },
			want: []string{"the capture lost 30 bytes from the server"}, wantRules: []string{RuleCaptureGap}},
		{name: "a gap, then bytes with no boundary", by: "unknown",
			feed: func(c *Conn) {
				c.Gap(stream.C2S, t0, 30)
				c.Feed(stream.C2S, t0, pub[5:])
			},
			level:     decode.LevelInfo,
			want:      []string{"the capture lost 30 bytes", fmt.Sprintf("ended with %d bytes from the client in which no packet boundary", len(pub)-5)},
			wantRules: []string{RuleCaptureGap, RuleUnfinished}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, Options{})
			s.connect(nil, nil)
			tc.feed(s.c)
			cr := s.c.Close(t0.Add(time.Second), closeEnd(tc.by, ""))
			rules := tc.wantRules
			if rules == nil {
				rules = []string{RuleUnfinished}
			}
			var got []Note
			for _, n := range cr.Notes {
				if slices.Contains(rules, n.Rule) {
					got = append(got, n)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("notes %+v, want %d of %v", cr.Notes, len(tc.want), rules)
			}
			for i, w := range tc.want {
				if got[i].Rule != rules[i] || !strings.Contains(got[i].Text, w) {
					t.Errorf("note %d: %s %q, want %s with %q", i, got[i].Rule, got[i].Text, rules[i], w)
				}
				if got[i].Rule == RuleUnfinished && got[i].Level != tc.level {
					t.Errorf("level %v, want %v", got[i].Level, tc.level)
				}
			}
		})
	}
}

func TestNothingUnfinishedAtClose(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c2s(publish("a", 0, 0, "x"))
	for _, n := range s.c.Close(t0.Add(time.Second), closeEnd("client-eof", "")).Notes {
		if n.Rule == RuleUnfinished || n.Rule == RuleCaptureGap {
			t.Errorf("note %+v after whole packets", n)
		}
	}
}

// A finding waiting for the next packet is counted once, when it is reported: on that packet,
// or on the close record when no packet came.
func TestPendingCountedOnce(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c.Gap(stream.C2S, t0, 30)
	s.c2s(publish("a", 0, 0, "x"))
	s.c.Gap(stream.S2C, t0, 30)
	s.c.Feed(stream.C2S, t0, []byte{0x30, 0xff, 0xff, 0xff, 0xff}) // unreadable Remaining Length
	cr := s.c.Close(t0.Add(time.Second), closeEnd("unknown", ""))
	if got := cr.State.Findings[RuleCaptureGap]; got != 2 {
		t.Errorf("%s counted %d times, want 2 (one per gap): %v", RuleCaptureGap, got, cr.State.Findings)
	}
	if got := cr.State.Findings[RuleMalformed]; got != 1 {
		t.Errorf("%s counted %d times, want 1: %v", RuleMalformed, got, cr.State.Findings)
	}
}

// TestSessionExpiry311 maps MQTT 3.1.1's Clean Session to the MQTT 5 Session Expiry Interval
// (MQTT 3.1.1 §3.1.2.4: with Clean Session 0 the session outlives the connection, with no expiry;
// mosquitto maps it to 0xFFFFFFFF too), with no
// finding about it.
func TestSessionExpiry311(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version decode.Version
		clean   bool
		want    uint32
	}{
		{"3.1.1 clean session 1", decode.V311, true, 0},
		{"3.1.1 clean session 0", decode.V311, false, 0xFFFFFFFF},
		{"3.1 clean session 0", decode.V31, false, 0xFFFFFFFF},
		{"5.0 clean start 0, no property", decode.V5, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, Options{})
			cn := &decode.Connect{ClientID: "dev1", KeepAlive: 60, CleanStart: tc.clean}
			cn.Version = tc.version
			ca := &decode.Connack{SessionPresent: !tc.clean}
			ca.Version = tc.version
			clean(t, s.c2s(cn))
			clean(t, s.s2c(ca))
			s.c2s(&decode.Disconnect{})
			var sr *SessionRecord
			for _, r := range s.recs {
				if r, ok := r.(*SessionRecord); ok {
					sr = r
				}
			}
			if sr == nil {
				t.Fatal("no session record")
			}
			if got := sr.Effective.SessionExpiryInterval; got != tc.want {
				t.Errorf("session record: session expiry %d, want %d", got, tc.want)
			}
			cr := s.c.Close(s.now, closeEnd("client-eof", "TCP FIN"))
			if got := cr.State.Effective.SessionExpiryInterval; got != tc.want {
				t.Errorf("close record: session expiry %d, want %d", got, tc.want)
			}
			if len(cr.Notes) > 0 {
				t.Errorf("close notes %+v", cr.Notes)
			}
		})
	}
	// A capture that starts after the CONNECT does not know the Clean Session flag.
	s := newSession(t, Options{})
	s.c.MidStream()
	ca := &decode.Connack{}
	ca.Version = decode.V311
	s.s2c(ca)
	if got := s.c.Snapshot().Effective.SessionExpiryInterval; got != 0 {
		t.Errorf("no CONNECT seen: session expiry %d, want 0", got)
	}
}

// TestCloseAtCaptureEnd: a capture that ends with the connection open says nothing closed; a
// real close without DISCONNECT, whoever saw it, is reported as before.
func TestCloseAtCaptureEnd(t *testing.T) {
	for _, tc := range []struct {
		by     string
		closed bool // a close finding is expected
	}{
		{"unknown", false},
		{"client", true}, {"server", true}, {"proxy", true},
		{"client-eof", true}, {"server-eof", true}, {"client-reset", true}, {"server-reset", true}, {"", true},
	} {
		t.Run(tc.by, func(t *testing.T) {
			reg := NewSessions()
			s := &session{t: t, c: NewConn(1, "c1", "s", Options{Sessions: reg}), now: t0}
			cn := &decode.Connect{ClientID: "dev1", KeepAlive: 60, CleanStart: true, Will: &decode.WillMessage{Topic: "w", Payload: []byte("gone")}}
			s.c2s(cn)
			s.s2c(&decode.Connack{})
			s.c2s(publish("a", 1, 1, "x"))
			other := NewConn(2, "c2", "s", Options{Sessions: reg})
			other.Feed(stream.C2S, s.now.Add(time.Millisecond), enc(t, &decode.Connect{ClientID: "dev1", KeepAlive: 60}))
			cr := s.c.Close(s.now.Add(time.Second), closeEnd(tc.by, ""))
			var closeNote bool
			for _, n := range cr.Notes {
				if n.Rule == RuleCloseNoDisc {
					closeNote = true
				}
				if !tc.closed && (strings.Contains(n.Text, "closed") || strings.Contains(n.Text, "at the close") || strings.Contains(n.Text, "Will")) {
					t.Errorf("the capture ended, nothing closed: %s %q", n.Rule, n.Text)
				}
			}
			if closeNote != tc.closed {
				t.Errorf("%s: %v, want %v; notes %+v", RuleCloseNoDisc, closeNote, tc.closed, cr.Notes)
			}
			if cr.State.Findings[RuleUnacked] != 1 {
				t.Errorf("%s counted %d times, want 1: %+v", RuleUnacked, cr.State.Findings[RuleUnacked], cr.Notes)
			}
			// A session takeover only when the server closed it.
			want := 0
			if strings.HasPrefix(tc.by, "server") {
				want = 1
			}
			if cr.State.Findings[RuleTakenOver] != want {
				t.Errorf("%s counted %d times, want %d: %+v", RuleTakenOver, cr.State.Findings[RuleTakenOver], want, cr.Notes)
			}
		})
	}
}

// TestUnknownAckAfterLoss: an acknowledgement of nothing in flight is a warning, but only
// information, put down to the loss, once the capture lost bytes from the requester.
func TestUnknownAckAfterLoss(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	if n := note(t, s.s2c(ack(decode.PUBACK, 7, 0)), RuleAckUnknown); n.Level != decode.LevelWarning {
		t.Errorf("before any loss: %v %s", n.Level, n.Text)
	}
	s.c.Gap(stream.S2C, t0, 20) // the server's bytes: not the client's PUBLISH
	if n := note(t, s.s2c(ack(decode.PUBACK, 8, 0)), RuleAckUnknown); n.Level != decode.LevelWarning {
		t.Errorf("after a loss from the server: %v %s", n.Level, n.Text)
	}
	s.c.Gap(stream.C2S, t0, 20)
	n := note(t, s.s2c(ack(decode.PUBACK, 9, 0)), RuleAckUnknown)
	if n.Level != decode.LevelInfo || !strings.Contains(n.Text, "the capture lost bytes from the client") {
		t.Errorf("after a loss from the client: %v %s", n.Level, n.Text)
	}
	if n := note(t, s.c2s(ack(decode.PUBREL, 3, 0)), RulePubrelUnknown); n.Level != decode.LevelInfo {
		t.Errorf("PUBREL after a loss: %v %s", n.Level, n.Text)
	}
}
