package inspect

import (
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// enc encodes a packet built in code.
func enc(t testing.TB, p decode.Packet) []byte {
	t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		t.Fatalf("encode %s: %v", p.Type(), err)
	}
	return b
}

// session drives a Conn with packets built in code, one millisecond apart.
type session struct {
	t    testing.TB
	c    *Conn
	now  time.Time
	recs []Record
}

func newSession(t testing.TB, opts Options) *session {
	return &session{t: t, c: NewConn(1, "10.0.0.2:50000", "10.0.0.1:1883", opts), now: t0}
}

// send feeds one packet in direction d and returns its packet record.
func (s *session) send(d stream.Dir, p decode.Packet) *PacketRecord {
	s.t.Helper()
	s.now = s.now.Add(time.Millisecond)
	recs := s.c.Feed(d, s.now, enc(s.t, p))
	s.recs = append(s.recs, recs...)
	if len(recs) == 0 {
		s.t.Fatalf("%s: no record", p.Type())
	}
	r, ok := recs[0].(*PacketRecord)
	if !ok {
		s.t.Fatalf("%s: first record is %T", p.Type(), recs[0])
	}
	return r
}

func (s *session) c2s(p decode.Packet) *PacketRecord { s.t.Helper(); return s.send(stream.C2S, p) }
func (s *session) s2c(p decode.Packet) *PacketRecord { s.t.Helper(); return s.send(stream.S2C, p) }

// wait advances the clock.
func (s *session) wait(d time.Duration) { s.now = s.now.Add(d) }

// connect opens an MQTT 5 session with the given CONNECT and CONNACK properties.
func (s *session) connect(connProps, ackProps decode.Properties) (*PacketRecord, *PacketRecord) {
	s.t.Helper()
	cr := s.c2s(&decode.Connect{ClientID: "dev1", KeepAlive: 60, CleanStart: true, Properties: connProps})
	ar := s.s2c(&decode.Connack{Properties: ackProps})
	return cr, ar
}

func props(ps ...decode.Property) decode.Properties { return ps }

func ip(id decode.PropID, v uint32) decode.Property { return decode.IntProp(id, v) }

func publish(topic string, qos byte, id uint16, payload string, ps ...decode.Property) *decode.Publish {
	return &decode.Publish{Topic: topic, QoS: qos, PacketID: id, Payload: []byte(payload), Properties: ps}
}

func ack(t decode.Type, id uint16, rc decode.ReasonCode) *decode.Ack {
	return &decode.Ack{PacketType: t, PacketID: id, ReasonCode: rc, HasReason: rc != 0}
}

// note returns the record's note with the given rule, failing when there is none.
func note(t testing.TB, r *PacketRecord, rule string) *Note {
	t.Helper()
	for i := range r.Notes {
		if r.Notes[i].Rule == rule {
			return &r.Notes[i]
		}
	}
	t.Fatalf("%s #%d: no note %s; notes: %s", r.Type(), r.Index, rule, notesText(r))
	return nil
}

// noNote fails when the record has a note with the given rule.
func noNote(t testing.TB, r *PacketRecord, rule string) {
	t.Helper()
	if r.HasRule(rule) {
		t.Fatalf("%s #%d: unexpected note %s; notes: %s", r.Type(), r.Index, rule, notesText(r))
	}
}

// clean fails when the record has any note.
func clean(t testing.TB, r *PacketRecord) {
	t.Helper()
	if len(r.Notes) > 0 {
		t.Fatalf("%s #%d: unexpected notes: %s", r.Type(), r.Index, notesText(r))
	}
}

func notesText(r *PacketRecord) string {
	var sb strings.Builder
	for _, n := range r.Notes {
		sb.WriteString("\n  " + n.Level.String() + " " + n.Rule + " " + n.Text)
		if n.Cause != nil {
			sb.WriteString(" <- " + n.Cause.Summary)
		}
	}
	if sb.Len() == 0 {
		return "none"
	}
	return sb.String()
}

// closeEnd turns the words of a close (as the text output shows them: "client-eof", "TCP FIN")
// into the typed end a source gives.
func closeEnd(by, reason string) stream.End {
	var e stream.End
	side, how, _ := strings.Cut(by, "-")
	switch side {
	case "client":
		e.By = stream.Client
	case "server":
		e.By = stream.Server
	case "proxy":
		e.By = stream.Proxy
	case "unknown":
		e.By = stream.SourceEnd // how the words said that the capture ended first
	}
	switch how {
	case "eof":
		e.How = stream.FIN
	case "reset":
		e.How = stream.RST
	}
	switch reason {
	case "TCP FIN", "TCP RST", "":
	case "the capture ended with the connection open":
	default:
		e.Detail = reason
	}
	return e
}
