package inspect

import (
	"bytes"
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
