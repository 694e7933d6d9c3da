package scenario

import (
	"errors"
	"fmt"
	"hash/maphash"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/stream"
)

// Expect is one expectation: exactly one of its kinds.
type Expect struct {
	Name       string            `yaml:"name"`
	Packet     *PacketExpect     `yaml:"packet"`
	Disconnect *DisconnectExpect `yaml:"disconnect"`
	Reconnect  *ReconnectExpect  `yaml:"reconnect"`
	Resend     *ResendExpect     `yaml:"resend"`
	NoFinding  *NoFindingExpect  `yaml:"no_finding"`
	Filter     *FilterExpect     `yaml:"filter"`
	Closed     *ClosedExpect     `yaml:"closed"`

	pos  string
	kind matcher
	win  Window
}

// Window is when an expectation looks: from After (start; the first connect, connack, fault or
// close; reconnect: the first CONNECT on another connection than the first) for
// Within (to the end of the run when 0).
type Window struct {
	Within time.Duration `yaml:"within"`
	After  string        `yaml:"after"`
}

// PacketExpect: a packet from a side, of a type (topic, reason code, QoS) arrives (at least
// once, or Count times exactly), or with None never does.
type PacketExpect struct {
	From   string `yaml:"from"` // client or server; either when empty
	Type   string `yaml:"type"`
	Topic  string `yaml:"topic"` // a topic filter
	Reason Code   `yaml:"reason"`
	QoS    *byte  `yaml:"qos"`
	Count  *int   `yaml:"count"`
	None   bool   `yaml:"none"`
	Window `yaml:",inline"`
}

// DisconnectExpect: a DISCONNECT from a side, with a reason code.
type DisconnectExpect struct {
	From   string `yaml:"from"`
	Reason Code   `yaml:"reason"`
	Window `yaml:",inline"`
}

// ClosedExpect: a side closes the connection (with or without DISCONNECT).
type ClosedExpect struct {
	By     string `yaml:"by"` // client or server; either when empty
	Window `yaml:",inline"`
}

// ReconnectExpect: after a connection closes, the device connects again within Within of the
// close, no sooner than MinBackoff, with Clean Start as given.
type ReconnectExpect struct {
	Within     time.Duration `yaml:"within"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	CleanStart *bool         `yaml:"clean_start"`
	After      string        `yaml:"after"`
}

// ResendExpect: a QoS 1/2 PUBLISH the client sent and had not seen acknowledged is sent again
// (with DUP 1 when Dup, with the same Packet Identifier when SamePacketID).
type ResendExpect struct {
	Dup          bool `yaml:"dup"`
	SamePacketID bool `yaml:"same_packet_id"`
	Window       `yaml:",inline"`
}

// NoFindingExpect: no finding of a rule (a glob such as MQTT-3.3.2-*) at or above a level on
// what a side sent, for the whole run (or the window).
type NoFindingExpect struct {
	Rule   string `yaml:"rule"`
	Level  string `yaml:"level"` // error, warning or info (the least level counted; info when empty)
	By     string `yaml:"by"`    // client or server; either when empty (then the findings of a close count too)
	Window `yaml:",inline"`
}

// FilterExpect: a --filter expression matches packets Count times exactly, or at least Min times
// (1 when neither is given).
type FilterExpect struct {
	Expr   string `yaml:"expr"`
	Count  *int   `yaml:"count"`
	Min    int    `yaml:"min"`
	Window `yaml:",inline"`
}

// event is what expectations see: a record of the inspected timeline, or a fault applied.
type event struct {
	t     time.Time
	rec   inspect.Record
	fault *fault.Applied
	step  *expState // an expect step of the built-in client starts
}

// seen is what a matcher makes of an event.
type seen struct {
	hit  bool   // the event is what is expected (or, for a negative one, what must not happen)
	fail string // the event decides a failure now, saying why
	near string // the event is the closest to what is expected so far (for the failure message)
}

// matcher is the kind-specific part of an expectation.
type matcher interface {
	see(ev *event, rel func(time.Time) string) seen
	expected() string
}

// windowStarter is a matcher whose window starts at an event of its own (reconnect: a close).
type windowStarter interface {
	windowStart() (time.Time, bool)
}

// mode says how hits decide.
type mode int

const (
	atLeast mode = iota // pass at the nth hit; fail at the deadline
	never               // fail at a hit; pass at the deadline
	exactly             // fail at one hit too many; at the deadline, pass when exactly n
)

func (e *Expect) check(pos string) error {
	e.pos = pos
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"packet", e.Packet != nil}, {"disconnect", e.Disconnect != nil}, {"reconnect", e.Reconnect != nil},
		{"resend", e.Resend != nil}, {"no_finding", e.NoFinding != nil}, {"filter", e.Filter != nil}, {"closed", e.Closed != nil}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) != 1 {
		return fmt.Errorf("an expectation is exactly one of packet, disconnect, closed, reconnect, resend, no_finding, filter (has %d)", len(kinds))
	}
	var err error
	switch {
	case e.Packet != nil:
		e.win = e.Packet.Window
		e.kind, err = e.Packet.matcher()
	case e.Disconnect != nil:
		e.win = e.Disconnect.Window
		var from stream.Dir
		var any bool
		if from, any, err = side(e.Disconnect.From); err == nil && any {
			err = errors.New("disconnect: from: is required (client or server)")
		}
		e.kind = &disconnectMatch{e: e.Disconnect, from: from}
	case e.Closed != nil:
		e.win = e.Closed.Window
		m := &closedMatch{}
		if m.by, m.any, err = side(e.Closed.By); err != nil {
			err = fmt.Errorf("closed: by: %w", err)
		}
		e.kind = m
	case e.Reconnect != nil:
		e.win = Window{After: e.Reconnect.After}
		if e.Reconnect.Within == 0 {
			err = errors.New("reconnect: within: is required")
		}
		e.kind = &reconnectMatch{e: e.Reconnect}
	case e.Resend != nil:
		e.win = e.Resend.Window
		e.kind = newResendMatch(e.Resend)
	case e.NoFinding != nil:
		e.win = e.NoFinding.Window
		e.kind, err = e.NoFinding.matcher()
	case e.Filter != nil:
		e.win = e.Filter.Window
		var f *inspect.Filter
		if f, err = inspect.CompileFilter(e.Filter.Expr); err != nil {
			err = fmt.Errorf("filter: %w", err)
		}
		e.kind = &filterMatch{e: e.Filter, f: f}
	}
	if err != nil {
		return err
	}
	switch e.win.After {
	case "", "start", "connect", "connack", "fault", "close", "reconnect":
	default:
		return fmt.Errorf("after: %q: want start, connect, connack, fault, close or reconnect", e.win.After)
	}
	return nil
}

// fresh is e's matcher for one run: the kinds that follow the run (reconnect, resend) start
// over, so that runs of the same file, one after the other or at once, do not share state.
func (e *Expect) fresh() matcher {
	switch m := e.kind.(type) {
	case *reconnectMatch:
		return &reconnectMatch{e: m.e}
	case *resendMatch:
		return newResendMatch(m.e)
	}
	return e.kind
}

// mode returns how e decides and the count it needs.
func (e *Expect) mode() (mode, int) {
	switch {
	case e.Packet != nil && e.Packet.None:
		return never, 0
	case e.Packet != nil && e.Packet.Count != nil:
		return exactly, *e.Packet.Count
	case e.Filter != nil && e.Filter.Count != nil:
		return exactly, *e.Filter.Count
	case e.Filter != nil && e.Filter.Min > 0:
		return atLeast, e.Filter.Min
	case e.NoFinding != nil:
		return never, 0
	}
	return atLeast, 1
}

// side reads from:/by:, any when empty.
func side(s string) (d stream.Dir, any bool, err error) {
	switch s {
	case "":
		return 0, true, nil
	case "client", "device":
		return stream.C2S, false, nil
	case "server", "broker":
		return stream.S2C, false, nil
	}
	return 0, false, fmt.Errorf("%q is not client or server", s)
}

// describe says what a record is, for messages: "DISCONNECT 0x95 Packet too large from server
// at +0.012s (conn 1)".
func describe(r inspect.Record, rel func(time.Time) string) string {
	switch r := r.(type) {
	case *inspect.PacketRecord:
		var b strings.Builder
		b.WriteString(r.Type().String())
		if p, ok := r.Packet.(*decode.Publish); ok {
			fmt.Fprintf(&b, " %q QoS %d", r.Topic, p.QoS)
			if p.Dup {
				b.WriteString(" DUP")
			}
			if p.QoS > 0 {
				fmt.Fprintf(&b, " id %d", p.PacketID)
			}
		}
		if rc, ok := decode.ReasonOf(r.Packet); ok {
			b.WriteString(" " + rc.String())
		}
		if c, ok := r.Packet.(*decode.Connect); ok {
			fmt.Fprintf(&b, " clean_start=%v", c.CleanStart)
		}
		fmt.Fprintf(&b, " from %s at %s (conn %d", r.Dir.Sender().String(), rel(r.Time), r.Conn)
		if r.ByProxy {
			b.WriteString(", sent by the proxy")
		}
		b.WriteString(")")
		return b.String()
	case *inspect.CloseRecord:
		return fmt.Sprintf("conn %d closed (%s) at %s", r.Conn, r.By(), rel(r.Time))
	}
	return r.Kind()
}

// packetMatch matches PacketRecords.
type packetMatch struct {
	e     *PacketExpect
	from  stream.Dir
	any   bool
	typ   decode.Type
	typed bool
}

func (pe *PacketExpect) matcher() (matcher, error) {
	m := &packetMatch{e: pe}
	var err error
	if m.from, m.any, err = side(pe.From); err != nil {
		return nil, fmt.Errorf("packet: from: %w", err)
	}
	if pe.Type != "" {
		if m.typ, m.typed = typeNamed(pe.Type); !m.typed {
			return nil, fmt.Errorf("packet: type: unknown packet type %q", pe.Type)
		}
	}
	if pe.Topic != "" {
		if msg, _ := decode.FilterProblem(pe.Topic); msg != "" {
			return nil, fmt.Errorf("packet: topic %q: %s", pe.Topic, msg)
		}
	}
	if pe.None && pe.Count != nil {
		return nil, errors.New("packet: none and count do not go together")
	}
	return m, nil
}

func (m *packetMatch) expected() string {
	var b strings.Builder
	pe := m.e
	switch {
	case pe.None:
		b.WriteString("no ")
	case pe.Count != nil:
		fmt.Fprintf(&b, "exactly %d ", *pe.Count)
	}
	if m.typed {
		b.WriteString(m.typ.String())
	} else {
		b.WriteString("packet")
	}
	if pe.Topic != "" {
		fmt.Fprintf(&b, " on %q", pe.Topic)
	}
	if pe.QoS != nil {
		fmt.Fprintf(&b, " at QoS %d", *pe.QoS)
	}
	if pe.Reason.Set {
		fmt.Fprintf(&b, " with reason %s", pe.Reason)
	}
	if !m.any {
		b.WriteString(" from " + m.from.Sender().String())
	}
	return b.String()
}

func (m *packetMatch) see(ev *event, rel func(time.Time) string) seen {
	r, ok := ev.rec.(*inspect.PacketRecord)
	if !ok || (!m.any && r.Dir != m.from) || (m.typed && r.Type() != m.typ) {
		return seen{}
	}
	pe := m.e
	if pe.Topic != "" {
		if _, ok := r.Packet.(*decode.Publish); !ok || !decode.TopicMatches(pe.Topic, r.Topic) {
			return seen{near: describe(r, rel)}
		}
	}
	if pe.QoS != nil {
		if p, ok := r.Packet.(*decode.Publish); !ok || p.QoS != *pe.QoS {
			return seen{near: describe(r, rel)}
		}
	}
	if pe.Reason.Set {
		if rc, ok := decode.ReasonOf(r.Packet); !ok || rc != pe.Reason.V {
			return seen{near: describe(r, rel)}
		}
	}
	return seen{hit: true, near: describe(r, rel)}
}

// disconnectMatch matches a DISCONNECT from a side; a close without one is a near miss.
type disconnectMatch struct {
	e    *DisconnectExpect
	from stream.Dir
}

func (m *disconnectMatch) expected() string {
	s := "DISCONNECT from " + m.from.Sender().String()
	if m.e.Reason.Set {
		s += " with reason " + m.e.Reason.String()
	}
	return s
}

func (m *disconnectMatch) see(ev *event, rel func(time.Time) string) seen {
	switch r := ev.rec.(type) {
	case *inspect.PacketRecord:
		if r.Dir != m.from || r.Type() != decode.DISCONNECT {
			return seen{}
		}
		if m.e.Reason.Set {
			if rc, _ := decode.ReasonOf(r.Packet); rc != m.e.Reason.V {
				return seen{near: describe(r, rel)}
			}
		}
		return seen{hit: true, near: describe(r, rel)}
	case *inspect.CloseRecord:
		if r.Disconnect == nil {
			return seen{near: describe(r, rel) + " without DISCONNECT"}
		}
	}
	return seen{}
}

// closedMatch matches the close of a connection by a side: its DISCONNECT, or the transport's
// end when it sent none.
type closedMatch struct {
	by  stream.Dir
	any bool
}

func (m *closedMatch) expected() string {
	if m.any {
		return "the connection closed"
	}
	return "the connection closed by the " + m.by.Sender().String()
}

func (m *closedMatch) see(ev *event, rel func(time.Time) string) seen {
	r, ok := ev.rec.(*inspect.CloseRecord)
	if !ok {
		return seen{}
	}
	// Who closed, as the device sees it: a DISCONNECT's sender (the proxy's, for a fault,
	// stands for the side it speaks as), else the side whose transport ended first.
	by := r.End.By
	if r.Disconnect != nil {
		by = r.Disconnect.Dir.Sender()
	}
	if m.any || by == m.by.Sender() {
		return seen{hit: true, near: describe(r, rel)}
	}
	return seen{near: describe(r, rel)}
}

// reconnectMatch waits for the device's connection to end, then for its next CONNECT.
type reconnectMatch struct {
	e      *ReconnectExpect
	first  int       // the connection the device reconnects from
	closed time.Time // when it closed
}

func (m *reconnectMatch) expected() string {
	s := fmt.Sprintf("a new CONNECT within %s of the close", m.e.Within)
	if m.e.MinBackoff > 0 {
		s += fmt.Sprintf(", no sooner than %s", m.e.MinBackoff)
	}
	if m.e.CleanStart != nil {
		s += fmt.Sprintf(", with Clean Start %v", *m.e.CleanStart)
	}
	return s
}

func (m *reconnectMatch) windowStart() (time.Time, bool) { return m.closed, !m.closed.IsZero() }

func (m *reconnectMatch) see(ev *event, rel func(time.Time) string) seen {
	switch r := ev.rec.(type) {
	case *inspect.CloseRecord:
		if m.closed.IsZero() && (m.first == 0 || r.Conn == m.first) {
			m.first, m.closed = r.Conn, r.Time
		}
	case *inspect.PacketRecord:
		c, ok := r.Packet.(*decode.Connect)
		if !ok || r.Dir != stream.C2S {
			return seen{}
		}
		if m.first == 0 || r.Conn == m.first {
			m.first = r.Conn
			return seen{}
		}
		var what string
		if m.closed.IsZero() {
			// The proxy reports a close once both directions ended; the device may connect
			// again before that: no time passed between the two as far as is known.
			m.closed = r.Time
			what = fmt.Sprintf("%s, before conn %d had finished closing", describe(r, rel), m.first)
		} else {
			what = fmt.Sprintf("%s, %s after the close of conn %d", describe(r, rel), max(r.Time.Sub(m.closed), 0).Round(time.Millisecond), m.first)
		}
		// Records of two connections come from two goroutines: a close stamped a moment
		// after the next CONNECT is no gap.
		if gap := max(r.Time.Sub(m.closed), 0); gap < m.e.MinBackoff {
			return seen{fail: what + ": sooner than the minimum backoff " + m.e.MinBackoff.String()}
		}
		if m.e.CleanStart != nil && c.CleanStart != *m.e.CleanStart {
			return seen{fail: what + fmt.Sprintf(": Clean Start %v", c.CleanStart)}
		}
		return seen{hit: true, near: what}
	}
	return seen{}
}

// resendMatch follows the client's unacknowledged QoS 1/2 PUBLISH packets and waits for one
// to be sent again.
type resendMatch struct {
	e        *ResendExpect
	inflight map[uint16]*decode.Publish
	// byPayload holds the Packet Identifiers of inflight by a hash of their payload, in the
	// order they were sent: a PUBLISH is compared with those of its payload, not with every
	// one in flight (a broker that acknowledges nothing leaves up to 65,535).
	byPayload map[uint64][]uint16
	seed      maphash.Seed
}

func newResendMatch(e *ResendExpect) *resendMatch {
	return &resendMatch{e: e, inflight: map[uint16]*decode.Publish{}, byPayload: map[uint64][]uint16{}, seed: maphash.MakeSeed()}
}

// add puts p in flight under its Packet Identifier, in place of what was there.
func (m *resendMatch) add(p *decode.Publish) {
	m.remove(p.PacketID)
	m.inflight[p.PacketID] = p
	h := maphash.Bytes(m.seed, p.Payload)
	m.byPayload[h] = append(m.byPayload[h], p.PacketID)
}

// remove takes the PUBLISH of Packet Identifier id out of flight.
func (m *resendMatch) remove(id uint16) {
	q, ok := m.inflight[id]
	if !ok {
		return
	}
	delete(m.inflight, id)
	h := maphash.Bytes(m.seed, q.Payload)
	ids := slices.DeleteFunc(m.byPayload[h], func(x uint16) bool { return x == id })
	if len(ids) == 0 {
		delete(m.byPayload, h)
	} else {
		m.byPayload[h] = ids
	}
}

func (m *resendMatch) expected() string {
	s := "an unacknowledged PUBLISH sent again"
	if m.e.Dup {
		s += " with DUP 1"
	}
	if m.e.SamePacketID {
		s += " with the same Packet Identifier"
	}
	return s
}

func (m *resendMatch) see(ev *event, rel func(time.Time) string) seen {
	r, ok := ev.rec.(*inspect.PacketRecord)
	if !ok {
		return seen{}
	}
	switch p := r.Packet.(type) {
	case *decode.Publish:
		if r.Dir != stream.C2S || p.QoS == 0 {
			return seen{}
		}
		prev, again := m.inflight[p.PacketID]
		if !again || !samePublish(prev, p, r.Topic) {
			again = false
			for _, id := range m.byPayload[maphash.Bytes(m.seed, p.Payload)] {
				if samePublish(m.inflight[id], p, r.Topic) {
					if m.e.SamePacketID {
						return seen{fail: fmt.Sprintf("%s: resent with Packet Identifier %d, first sent as %d", describe(r, rel), p.PacketID, id)}
					}
					again = true
					break
				}
			}
		}
		if !again {
			m.add(p)
			return seen{}
		}
		if m.e.Dup && !p.Dup {
			return seen{fail: describe(r, rel) + ": resent with DUP 0"}
		}
		return seen{hit: true, near: describe(r, rel)}
	case *decode.Ack:
		if r.Dir == stream.S2C && (p.PacketType == decode.PUBACK || p.PacketType == decode.PUBREC) {
			m.remove(p.PacketID)
		}
	}
	return seen{}
}

// samePublish: q is p sent again (same topic and payload); topic is p's, resolved.
func samePublish(q, p *decode.Publish, topic string) bool {
	qt := q.Topic
	return (qt == topic || qt == "" || topic == "") && string(q.Payload) == string(p.Payload)
}

// noFindingMatch matches findings.
type noFindingMatch struct {
	e     *NoFindingExpect
	by    stream.Dir
	any   bool
	level decode.Level
}

func (nf *NoFindingExpect) matcher() (matcher, error) {
	m := &noFindingMatch{e: nf, level: decode.LevelInfo}
	var err error
	if m.by, m.any, err = side(nf.By); err != nil {
		return nil, fmt.Errorf("no_finding: by: %w", err)
	}
	switch nf.Level {
	case "", "info":
	case "warning":
		m.level = decode.LevelWarning
	case "error":
		m.level = decode.LevelError
	default:
		return nil, fmt.Errorf("no_finding: level: %q is not error, warning or info", nf.Level)
	}
	if nf.Rule == "" {
		nf.Rule = "*"
	}
	if _, err := path.Match(nf.Rule, ""); err != nil {
		return nil, fmt.Errorf("no_finding: rule: %w", err)
	}
	return m, nil
}

func (m *noFindingMatch) expected() string {
	s := "no finding"
	if m.e.Rule != "*" {
		s += " " + m.e.Rule
	}
	if m.level != decode.LevelInfo {
		s += " at level " + m.level.String() + " or above"
	}
	if !m.any {
		s += " on what the " + m.by.Sender().String() + " sent"
	}
	return s
}

func (m *noFindingMatch) see(ev *event, rel func(time.Time) string) seen {
	var notes []inspect.Note
	switch r := ev.rec.(type) {
	case *inspect.PacketRecord:
		if !m.any && r.Dir != m.by {
			return seen{}
		}
		notes = r.Notes
	case *inspect.CloseRecord:
		// The findings of the end (a close without DISCONNECT, a packet cut off, messages
		// left unacknowledged) are the connection's, not one side's: they count without by:.
		if !m.any {
			return seen{}
		}
		notes = r.Notes
	default:
		return seen{}
	}
	for _, n := range notes {
		if n.Level > m.level { // levels count down: error 0, warning 1, info 2
			continue
		}
		if ok, _ := path.Match(m.e.Rule, n.Rule); ok {
			return seen{hit: true, near: fmt.Sprintf("%s %s: %s, on %s", n.Level, n.Rule, n.Text, describe(ev.rec, rel))}
		}
	}
	return seen{}
}

// filterMatch counts the packets a filter expression matches.
type filterMatch struct {
	e *FilterExpect
	f *inspect.Filter
}

func (m *filterMatch) expected() string {
	switch {
	case m.e.Count != nil:
		return fmt.Sprintf("exactly %s matching %s", inspect.Plural(*m.e.Count, "packet"), m.e.Expr)
	case m.e.Min > 1:
		return fmt.Sprintf("at least %d packets matching %s", m.e.Min, m.e.Expr)
	}
	return "a packet matching " + m.e.Expr
}

func (m *filterMatch) see(ev *event, rel func(time.Time) string) seen {
	r, ok := ev.rec.(*inspect.PacketRecord)
	if !ok || !m.f.Match(r) {
		return seen{}
	}
	return seen{hit: true, near: describe(r, rel)}
}
