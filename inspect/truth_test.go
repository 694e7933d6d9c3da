package inspect

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// TestUnreadConnectFields: a CONNECT whose properties are malformed ends before its Client
// Identifier, keep alive is read but nothing after it. The fields never decoded are left out
// of every output, not shown as "" or 0, and raise no finding (an accepting CONNACK without an
// Assigned Client Identifier is not "an empty Client Identifier").
func TestUnreadConnectFields(t *testing.T) {
	s := newSession(t, Options{})
	connect := []byte{
		0x10, 0x0e, // CONNECT, remaining length 14
		0x00, 0x04, 'M', 'Q', 'T', 'T',
		0x05,       // MQTT 5
		0x02,       // Clean Start
		0x00, 0x3c, // keep alive 60
		0x03,             // property length 3
		0x11, 0x00, 0x00, // Session Expiry Interval needs 4 bytes: the packet ends inside it
	}
	recs := s.c.Feed(stream.C2S, t0, connect)
	recs = append(recs, s.s2c(&decode.Connack{}))
	cr := recs[0].(*PacketRecord)
	if cr.Type() != decode.CONNECT {
		t.Fatalf("first record %s", cr.Type())
	}
	for _, r := range recs {
		for _, n := range r.(*PacketRecord).Notes {
			if strings.Contains(n.Text, "Client Identifier") {
				t.Errorf("%s: %s %s", r.(*PacketRecord).Type(), n.Rule, n.Text)
			}
		}
	}
	var text, js bytes.Buffer
	render(NewTextWriter(&text, TextOptions{Payload: payload.Preview}), recs[:1])
	render(NewJSONWriter(&js, JSONOptions{}), recs[:1])
	if strings.Contains(text.String(), "client_id=") || !strings.Contains(text.String(), "keep_alive=60") {
		t.Errorf("text: %s", text.String())
	}
	if strings.Contains(js.String(), "connect_client_id") || !strings.Contains(js.String(), `"keep_alive":60`) {
		t.Errorf("JSON: %s", js.String())
	}
	var detail bytes.Buffer
	if err := WriteDetail(&detail, 1, 0, cr.Packet, DetailOptions{}); err != nil || strings.Contains(detail.String(), "  client_id ") {
		t.Errorf("detail (%v): %s", err, detail.String())
	}
}

// TestTakeoverOnlyWhenServerCloses: a session takeover is told only when the same Client
// Identifier reaches the same server and the server closes the earlier connection around the
// later CONNECT; never for another server, a client's own DISCONNECT, or a close long after.
func TestTakeoverOnlyWhenServerCloses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		server2    string        // the later connection's server
		clientDisc bool          // the earlier one ends with the client's DISCONNECT
		after      time.Duration // the close, after the later CONNECT
		by         string
		takeover   bool // CONNECT note on the later connection
		takenOver  bool // close note on the earlier one
	}{
		{"server closes at once", "10.0.0.1:1883", false, 3 * time.Millisecond, "server-eof", true, true},
		{"another server", "10.0.0.9:1883", false, 3 * time.Millisecond, "server-eof", false, false},
		{"client's own DISCONNECT", "10.0.0.1:1883", true, 3 * time.Millisecond, "client-eof", true, false},
		{"client's own DISCONNECT, server FIN first", "10.0.0.1:1883", true, 3 * time.Millisecond, "server-eof", true, false},
		{"server closes a minute later", "10.0.0.1:1883", false, time.Minute, "server-eof", true, false},
		{"client closes", "10.0.0.1:1883", false, 3 * time.Millisecond, "client-reset", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewSessions()
			old := NewConn(1, "10.0.0.2:50000", "10.0.0.1:1883", Options{Sessions: reg})
			nw := NewConn(2, "10.0.0.2:50001", tc.server2, Options{Sessions: reg})
			old.Feed(stream.C2S, t0, enc(t, &decode.Connect{ClientID: "dev", KeepAlive: 60}))
			old.Feed(stream.S2C, t0, enc(t, &decode.Connack{}))
			later := t0.Add(time.Second)
			recs := nw.Feed(stream.C2S, later, enc(t, &decode.Connect{ClientID: "dev", KeepAlive: 60}))
			if got := recs[0].(*PacketRecord).HasRule(RuleTakeover); got != tc.takeover {
				t.Errorf("takeover on the CONNECT: %v, want %v", got, tc.takeover)
			}
			recs = nw.Feed(stream.S2C, later, enc(t, &decode.Connack{}))
			if recs[0].(*PacketRecord).HasRule(RuleTakeover) {
				t.Error("a CONNACK without Session Present resumes nothing")
			}
			if tc.clientDisc {
				old.Feed(stream.C2S, later.Add(time.Millisecond), enc(t, &decode.Disconnect{}))
			}
			cr := old.Close(later.Add(tc.after), closeEnd(tc.by, ""))
			got := false
			for _, n := range cr.Notes {
				got = got || n.Rule == RuleTakenOver
			}
			if got != tc.takenOver {
				t.Errorf("taken over at the close: %v, want %v: %+v", got, tc.takenOver, cr.Notes)
			}
		})
	}
}

// TestAckLimitExplained: an acknowledgement whose reason code names a limit the PUBLISH did not
// break says what mqscope can tell (an unannounced limit, with the numbers), and a PUBREC 0x97
// for a PUBLISH over the Receive Maximum links to that finding.
func TestAckLimitExplained(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, decode.Properties{decode.IntProp(decode.PropReceiveMaximum, 1)})
	pub := s.c2s(publish("a/b", 1, 1, strings.Repeat("x", 64)))
	r := s.s2c(ack(decode.PUBACK, 1, decode.PacketTooLarge))
	n := note(t, r, RuleAckError)
	want := fmt.Sprintf("the broker applied a limit it did not announce in CONNACK (the PUBLISH was %d bytes", pub.Size())
	if n.Cause == nil || n.Cause.Index != pub.Index || !strings.Contains(n.Cause.Summary, want) {
		t.Errorf("PUBACK 0x95: cause %+v, want %q", n.Cause, want)
	}
	s.c2s(publish("a/b", 2, 2, "x"))
	over := s.c2s(publish("a/b", 2, 3, "y"))
	note(t, over, "MQTT-3.3.4-7")
	r = s.s2c(ack(decode.PUBREC, 3, decode.QuotaExceeded))
	n = note(t, r, RuleAckError)
	if n.Cause == nil || n.Cause.Index != over.Index || !strings.Contains(n.Cause.Summary, "over the Receive Maximum 1") || !strings.Contains(n.Cause.Summary, "0x97") {
		t.Errorf("PUBREC 0x97: cause %+v", n.Cause)
	}
}

// TestSummaryOwnCauses: the summary's findings say this connection's sentence and cause, not
// the rule's general meaning cut short, and its alias table leaves out an alias the server
// rejected.
func TestSummaryOwnCauses(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 2)})
	s.c2s(publish("a/b", 0, 0, "x", decode.IntProp(decode.PropTopicAlias, 1)))
	s.c2s(publish("c/d", 0, 0, "y", decode.IntProp(decode.PropTopicAlias, 3)))
	s.s2c(&decode.Disconnect{HasReason: true, ReasonCode: decode.TopicAliasInvalid})
	recs := append(s.recs, s.c.Close(s.now, closeEnd("server-eof", "")))
	var buf bytes.Buffer
	render(NewSummaryWriter(&buf, TextOptions{}), recs)
	out := buf.String()
	for _, want := range []string{
		`Topic aliases client→server: 1="a/b"` + "\n",
		"MQTT-3.3.2-9                       ×1  Topic Alias 3 is above the Topic Alias Maximum 2 granted in CONNACK",
		"the server closed the connection: 0x94 Topic Alias invalid; caused by PUBLISH #4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// TestTextWillProperties: the text line of a CONNECT shows its Will's properties as it shows
// a PUBLISH's.
func TestTextWillProperties(t *testing.T) {
	s := newSession(t, Options{})
	r := s.c2s(&decode.Connect{ClientID: "d", Will: &decode.WillMessage{Topic: "gone", Payload: []byte("bye"), Properties: decode.Properties{
		decode.IntProp(decode.PropWillDelay, 30),
		decode.StrProp(decode.PropContentType, "text/plain"),
		decode.UserProp("site", "north"),
	}}})
	var buf bytes.Buffer
	render(NewTextWriter(&buf, TextOptions{Payload: payload.Preview}), []Record{r})
	for _, want := range []string{`will="gone"`, "will.will_delay_interval=30", `will.content_type="text/plain"`, `will.user_property="site=north"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("missing %s in %s", want, buf.String())
		}
	}
}

// TestProfileMismatchEveryValue: the CONNACK is compared with every value a profile states:
// Server Keep Alive (also when the client's keep alive is within the range) and the
// availabilities, for a user's profile and a built-in one.
func TestProfileMismatchEveryValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.yaml")
	if err := os.WriteFile(path, []byte("keep_alive: {min: 60, max: 480}\nretain_available: false\nwildcard_subscription_available: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	user, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := LoadProfile("apsaramq")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prof  *Profile
		ack   decode.Properties
		wants []string
	}{
		{user, decode.Properties{decode.IntProp(decode.PropServerKeepAlive, 30), decode.IntProp(decode.PropWildcardSubAvailable, 0)},
			[]string{"Server Keep Alive 100, CONNACK has 30", "Retain Available 0, CONNACK has none", "Wildcard Subscription Available 1, CONNACK has 0"}},
		{builtin, decode.Properties{decode.IntProp(decode.PropServerKeepAlive, 100), decode.IntProp(decode.PropSharedSubAvailable, 0)},
			[]string{"Shared Subscription Available 1, CONNACK has 0"}},
	} {
		s := newSession(t, Options{Profile: tc.prof})
		s.c2s(&decode.Connect{ClientID: "d", KeepAlive: 100})
		r := s.s2c(&decode.Connack{Properties: tc.ack})
		n := note(t, r, RuleProfileMismatch)
		for _, want := range tc.wants {
			if !strings.Contains(n.Text, want) {
				t.Errorf("%s: %q lacks %q", tc.prof.Name, n.Text, want)
			}
		}
	}
}

// TestResyncAgreesWithOtherSide: after the capture lost the start of a server PUBLISH whose
// payload's tail holds what reads as a PUBACK for a packet identifier the client never used,
// the reading that begins there chains cleanly to the end, but answers nothing the client has
// in flight: resynchronisation passes over it to the real PUBACK.
func TestResyncAgreesWithOtherSide(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c2s(publish("up", 1, 1, "x"))
	tail := []byte{0x00, 0x00, 0x40, 0x02, 0x00, 0x09} // the payload's end: a PUBACK 9 from byte 2
	real := enc(t, ack(decode.PUBACK, 1, 0))
	s.now = s.now.Add(time.Millisecond)
	s.c.Gap(stream.S2C, s.now, 20)
	recs := s.c.Feed(stream.S2C, s.now, append(tail, real...))
	var got []string
	for _, r := range recs {
		if p, ok := r.(*PacketRecord); ok {
			id, _ := decode.PacketID(p.Packet)
			got = append(got, fmt.Sprintf("%s %d %v", p.Type(), id, p.Notes))
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "PUBACK 1 ") || strings.Contains(got[0], RuleAckUnknown) {
		t.Errorf("after the loss: %q, want PUBACK 1 alone", got)
	}
}
