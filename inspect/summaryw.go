package inspect

import (
	"cmp"
	"container/heap"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// SummaryWriter prints per connection the negotiated limits, both alias tables, counts by
// packet type, the reason codes seen and the findings by rule. A connection's summary is
// written once it has closed and, in the order of first records, every connection before it
// has been written: memory follows the connections open (and, in that order, the closed ones
// waiting behind an open one, as their text). Close writes those still open.
type SummaryWriter struct {
	w       io.Writer
	o       TextOptions
	parts   []*Summary
	seq     int64
	live    bool          // in the order connections close, not of first records
	pending doneSummaries // closed, rendered, waiting for their turn
	printed int
	buf     []byte
	err     error
}

// Summary collects what the summary shows about the connections of the records added to it.
// Several Summaries of different connections (inspected on different goroutines) are printed
// as one by the Writer of NewSummaryWriterOf.
type Summary struct {
	conns map[int]*connSummary // open: no close record yet
	last  *connSummary         // the connection of the last record, the likeliest of the next
	o     TextOptions          // set by the writer

	// mu guards what the writer takes from another goroutine: the connections in the order of
	// their first records (open ones, and closed ones not yet skipped from head), and done.
	mu    sync.Mutex
	order []*connSummary
	head  int
	done  doneSummaries // closed connections' summaries, rendered, in the order they closed
}

// doneSummary is a closed connection's summary, rendered.
type doneSummary struct {
	first int64
	text  string
}

// doneSummaries is a min-heap by first.
type doneSummaries []doneSummary

func (h doneSummaries) Len() int           { return len(h) }
func (h doneSummaries) Less(i, j int) bool { return h[i].first < h[j].first }
func (h doneSummaries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *doneSummaries) Push(x any)        { *h = append(*h, x.(doneSummary)) }
func (h *doneSummaries) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// connSummary accumulates what the summary shows about one connection.
type connSummary struct {
	id             int
	first          int64 // the place of the connection's first record in the output order
	closed         bool  // guarded by the Summary's mu
	client, server string
	clientID       string
	version        decode.Version
	session        *SessionRecord
	encrypted      *EncryptedRecord
	tls            *stream.TLSInfo // the connection was decrypted from TLS
	close          *CloseRecord
	packets        typeCount[int]
	aliases        [2]map[uint16]string
	reasons        map[string]int
	rules          map[string]int
	texts          map[string]string // the first finding's sentence per rule: this connection's cause
	levels         map[string]decode.Level
	findings       [3]int
}

// NewSummaryWriter returns a SummaryWriter of one part, written to by Write.
func NewSummaryWriter(w io.Writer, o TextOptions) *SummaryWriter {
	return NewSummaryWriterOf(w, o, NewSummary())
}

// NewLiveSummaryWriter returns a SummaryWriter that writes each connection's summary as soon
// as it closes, whatever the connections before it (for a live proxy); those still open at
// Close come in the order of their first records.
func NewLiveSummaryWriter(w io.Writer, o TextOptions) *SummaryWriter {
	s := NewSummaryWriter(w, o)
	s.live = true
	return s
}

// NewSummaryWriterOf returns a summary Writer of the connections of all parts, each connection
// in one part, in the order of their first records. Its Write adds a record to the first part,
// after every record added to it before; records added to the parts directly (Summary.Add)
// are written once Written says every record up to theirs has been added.
func NewSummaryWriterOf(w io.Writer, o TextOptions, parts ...*Summary) *SummaryWriter {
	for _, p := range parts {
		p.o = o
	}
	return &SummaryWriter{w: w, o: o, parts: parts}
}

// NewSummary returns an empty Summary.
func NewSummary() *Summary {
	return &Summary{conns: map[int]*connSummary{}}
}

func (s *Summary) conn(seq int64, id int, client, server string) *connSummary {
	if c := s.last; c != nil && c.id == id {
		return c
	}
	c := s.conns[id]
	if c == nil {
		c = &connSummary{id: id, first: seq, client: client, server: server, reasons: map[string]int{}, rules: map[string]int{}, texts: map[string]string{}, levels: map[string]decode.Level{}}
		s.conns[id] = c
		s.mu.Lock()
		s.order = append(s.order, c)
		s.mu.Unlock()
	}
	s.last = c
	return c
}

// finish renders a closed connection's summary and lets go of the rest of it.
func (s *Summary) finish(c *connSummary) {
	var sb strings.Builder
	c.write(&sb, s.o)
	delete(s.conns, c.id)
	if s.last == c {
		s.last = nil
	}
	s.mu.Lock()
	c.closed = true
	s.done = append(s.done, doneSummary{c.first, sb.String()})
	s.mu.Unlock()
}

// take moves the rendered summaries to h and returns the first record's place of the earliest
// connection still open (math.MaxInt64 when none).
func (s *Summary) take(h *doneSummaries) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.done {
		heap.Push(h, d)
	}
	clear(s.done)
	s.done = s.done[:0]
	for s.head < len(s.order) && s.order[s.head].closed {
		s.order[s.head] = nil
		s.head++
	}
	if s.head > 1024 && s.head > len(s.order)/2 {
		s.order = append([]*connSummary(nil), s.order[s.head:]...)
		s.head = 0
	}
	if s.head < len(s.order) {
		return s.order[s.head].first
	}
	return math.MaxInt64
}

// Write adds r to the first part and writes the summaries whose turn has come.
func (s *SummaryWriter) Write(r Record) error {
	s.seq++
	s.parts[0].Add(s.seq, r)
	switch r.(type) {
	case *CloseRecord, *EncryptedRecord:
		return s.Written(s.seq)
	}
	return s.err
}

// Written says that every record up to place seq has been added to the parts; it writes the
// summaries of the closed connections whose turn has come. Call it from one goroutine at a
// time (it may run while records after seq are being added).
func (s *SummaryWriter) Written(seq int64) error {
	open := int64(math.MaxInt64)
	for _, p := range s.parts {
		open = min(open, p.take(&s.pending))
	}
	if s.live {
		open, seq = math.MaxInt64, math.MaxInt64
	}
	s.buf = s.buf[:0]
	for len(s.pending) > 0 && s.pending[0].first < open && s.pending[0].first <= seq {
		d := heap.Pop(&s.pending).(doneSummary)
		if s.printed > 0 {
			s.buf = append(s.buf, '\n')
		}
		s.buf = append(s.buf, d.text...)
		s.printed++
	}
	if len(s.buf) > 0 && s.err == nil {
		_, s.err = s.w.Write(s.buf)
	}
	return s.err
}

// Add counts a record whose place in the output order is seq: the records of a connection
// are added in order, and seq orders the connections by their first records.
func (s *Summary) Add(seq int64, r Record) {
	switch r := r.(type) {
	case *PacketRecord:
		c := s.conn(seq, r.Conn, r.Client, r.Server)
		c.clientID, c.version, c.tls = r.ClientID, r.Version, r.TLS
		c.packets.add(r.Type())
		if p, ok := r.Packet.(*decode.Publish); ok && r.Version == decode.V5 {
			// An alias over the receiver's maximum is rejected, not mapped.
			if a, ok := p.Properties.TopicAlias(); ok && a != 0 && p.Topic != "" && !aliasRejected(r) {
				if c.aliases[r.Dir] == nil {
					c.aliases[r.Dir] = map[uint16]string{}
				}
				c.aliases[r.Dir][a] = p.Topic
			}
		}
		for _, rc := range reasonCodes(r.Packet) {
			if rc == 0 && r.Type() != decode.CONNACK {
				continue
			}
			c.reasons[fmt.Sprintf("%s 0x%02X %s", r.Type(), byte(rc), decode.ReasonName(r.Version, r.Type(), rc))]++
		}
		c.note(r.Notes)
	case *SessionRecord:
		c := s.conn(seq, r.Conn, r.Client, r.Server)
		c.session = r
		c.clientID, c.tls = r.ClientID, r.TLS
	case *CloseRecord:
		c := s.conn(seq, r.Conn, r.Client, r.Server)
		c.close = r
		c.tls = r.TLS
		c.note(r.Notes)
		s.finish(c)
	case *EncryptedRecord:
		c := s.conn(seq, r.Conn, r.Client, r.Server)
		c.encrypted = r
		s.finish(c)
	}
}

// note counts findings by rule and level.
func (c *connSummary) note(notes []Note) {
	for _, n := range notes {
		if _, ok := c.texts[n.Rule]; !ok {
			t := n.Text
			if n.Cause != nil {
				t += "; caused by " + n.Cause.Summary
			}
			c.texts[n.Rule] = t
		}
		c.rules[n.Rule]++
		if l, ok := c.levels[n.Rule]; !ok || n.Level < l {
			c.levels[n.Rule] = n.Level
		}
		c.findings[n.Level]++
	}
}

// Close writes the summaries of the connections still open after those closed, all in the
// order of their first records.
func (s *SummaryWriter) Close() error {
	for _, p := range s.parts {
		for _, c := range p.conns {
			p.finish(c)
		}
	}
	s.live = false
	return s.Written(math.MaxInt64)
}

func (c *connSummary) write(sb *strings.Builder, o TextOptions) {
	if c.encrypted != nil {
		sb.Write(o.paint(nil, ansiBold, fmt.Sprintf("Connection %d  %s", c.id, encryptedLine(c.encrypted))))
		sb.WriteByte('\n')
		return
	}
	// With a filter, the CONNECT and the session record may not be among the records: the
	// close record's final state still knows the negotiation.
	clientID, connected := c.clientID, c.packets.byType[decode.CONNECT] > 0 || c.session != nil && c.session.VersionFrom == VersionFromConnect
	granted, effective := (*Granted)(nil), (*Effective)(nil)
	version := c.version // of the packets; MQTT 5 limits apply only to MQTT 5
	versionLine := fmt.Sprintf("MQTT %s", c.version)
	switch {
	case c.session != nil && c.session.VersionFrom != VersionFromConnect:
		versionLine = versionText(c.session.Version, c.session.VersionFrom)
	case c.session == nil && c.close != nil && c.close.State.VersionFrom != VersionFromConnect:
		versionLine = versionText(c.close.State.Version, c.close.State.VersionFrom)
	}
	if s := c.session; s != nil {
		granted, effective = &s.Granted, &s.Effective
		if c.packets.total == 0 {
			version = s.Version
		}
	} else if c.close != nil {
		st := &c.close.State
		if st.Packets[decode.CONNECT.String()] > 0 {
			clientID, connected = st.ClientID, true
			if c.packets.total == 0 {
				version = st.Version
			}
		}
		if st.Negotiated {
			granted, effective = &st.Granted, &st.Effective
		}
	}
	v3 := version == decode.V311 || version == decode.V31
	head := fmt.Sprintf("Connection %d  %s → %s", c.id, c.client, c.server)
	switch {
	case c.packets.total == 0 && !connected:
		head += "  no whole MQTT packet"
	case !connected:
		head += "  client_id unknown (no CONNECT seen)  " + versionLine
	default:
		head += fmt.Sprintf("  client_id %q  %s", clientID, versionLine)
	}
	sb.Write(o.paint(nil, ansiBold, head))
	sb.WriteByte('\n')
	if c.tls != nil {
		fmt.Fprintf(sb, "  %s\n", decryptedLine(c.tls))
	}
	if c.close != nil {
		fmt.Fprintf(sb, "  %s\n", closeText(c.close))
	}
	switch g, e := granted, effective; {
	case g != nil && g.ReasonCode != 0:
		fmt.Fprintf(sb, "  refused: CONNACK 0x%02X %s\n", byte(g.ReasonCode), g.Reason)
	case g != nil && !connected:
		// Keep alive, session expiry and the client's limits were in the CONNECT.
		fmt.Fprintf(sb, "  CONNACK 0x%02X %s; no CONNECT seen: keep alive, session expiry and the limits the client set are unknown\n", byte(g.ReasonCode), g.Reason)
		if v3 {
			fmt.Fprintf(sb, "  MQTT %s: no negotiated limits (no Receive Maximum, Maximum Packet Size or Topic Aliases)\n", version)
			break
		}
		limitTable(sb, e, "unknown")
	case g != nil:
		fmt.Fprintf(sb, "  CONNACK 0x%02X %s; keep alive %d s (from the %s); session expiry %s\n", byte(g.ReasonCode), g.Reason, e.KeepAlive, e.KeepAliveFrom, seconds(e.SessionExpiryInterval))
		if v3 {
			fmt.Fprintf(sb, "  MQTT %s: no negotiated limits (no Receive Maximum, Maximum Packet Size or Topic Aliases)\n", version)
			break
		}
		limitTable(sb, e, "")
	case v3:
		sb.WriteString("  no CONNACK seen\n")
	default:
		sb.WriteString("  no CONNACK seen: limits unknown\n")
	}
	aliasDirs := []stream.Dir{stream.C2S, stream.S2C}
	if v3 {
		aliasDirs = nil // no Topic Aliases before MQTT 5
	}
	for _, d := range aliasDirs {
		fmt.Fprintf(sb, "  Topic aliases %s: ", map[stream.Dir]string{stream.C2S: "client→server", stream.S2C: "server→client"}[d])
		m := c.aliases[d]
		if len(m) == 0 {
			sb.WriteString("none\n")
			continue
		}
		keys := make([]int, 0, len(m))
		for k := range m {
			keys = append(keys, int(k))
		}
		sort.Ints(keys)
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(sb, "%d=%q", k, m[uint16(k)])
		}
		sb.WriteByte('\n')
	}
	var types []string
	for t := range 16 {
		if n := c.packets.byType[t]; n > 0 {
			types = append(types, fmt.Sprintf("%s %d", decode.Type(t), n))
		}
	}
	// Fewer records than packets: a filter let only some through.
	shown := fmt.Sprint(c.packets.total)
	if c.close != nil {
		if all := c.close.State.PacketsC2S + c.close.State.PacketsS2C; all != c.packets.total {
			shown = fmt.Sprintf("%d shown of %d", c.packets.total, all)
		}
	}
	if len(types) == 0 {
		fmt.Fprintf(sb, "  Packets: %s\n", shown)
	} else {
		fmt.Fprintf(sb, "  Packets: %s (%s)\n", shown, strings.Join(types, ", "))
	}
	if len(c.reasons) > 0 {
		var rs []string
		for _, k := range sortedKeys(c.reasons) {
			rs = append(rs, fmt.Sprintf("%s ×%d", k, c.reasons[k]))
		}
		fmt.Fprintf(sb, "  Reason codes: %s\n", strings.Join(rs, "; "))
	}
	if len(c.rules) == 0 {
		sb.WriteString("  Findings: none\n")
		return
	}
	fmt.Fprintf(sb, "  Findings: %s, %s, %d info\n", Plural(c.findings[decode.LevelError], "error"), Plural(c.findings[decode.LevelWarning], "warning"), c.findings[decode.LevelInfo])
	rules := sortedKeys(c.rules)
	sort.SliceStable(rules, func(i, j int) bool { return c.levels[rules[i]] < c.levels[rules[j]] })
	for _, k := range rules {
		l := c.levels[k]
		sb.WriteString("    ")
		sb.Write(o.paint(nil, levelColor(l), fmt.Sprintf("%-7s", l)))
		fmt.Fprintf(sb, " %-34s ×%d", k, c.rules[k])
		// This connection's own sentence (the first, when there are several), not the rule's
		// general meaning: that is in RULES.md.
		if t := c.texts[k]; t != "" {
			if c.rules[k] > 1 {
				t = "first: " + t
			}
			fmt.Fprintf(sb, "  %s", t)
		} else if t, ok := RuleText(k); ok {
			fmt.Fprintf(sb, "  %s", t)
		}
		sb.WriteByte('\n')
	}
}

// limitTable writes the negotiated limits of both directions; s2c, when not empty, stands for
// every limit the CONNECT set (when it was not seen).
func limitTable(sb *strings.Builder, e *Effective, s2c string) {
	or := func(v string) string { return cmp.Or(s2c, v) }
	itoa := strconv.Itoa
	rows := [...][3]string{
		{"  Limit", "client→server (CONNACK)", "server→client (CONNECT)"},
		{"  Receive Maximum", itoa(e.C2S.ReceiveMaximum), or(itoa(e.S2C.ReceiveMaximum))},
		{"  Maximum Packet Size", sizeLimit(e.C2S.MaximumPacketSize), or(sizeLimit(e.S2C.MaximumPacketSize))},
		{"  Topic Alias Maximum", itoa(e.C2S.TopicAliasMaximum), or(itoa(e.S2C.TopicAliasMaximum))},
		{"  Maximum QoS", itoa(e.C2S.MaximumQoS), "-"},
		{"  Retain Available", yesNo(e.C2S.RetainAvailable), "-"},
		{"  Wildcard Subscription", yesNo(e.C2S.WildcardSubscriptionAvailable), "-"},
		{"  Subscription Identifiers", yesNo(e.C2S.SubscriptionIdentifiersAvailable), "-"},
		{"  Shared Subscription", yesNo(e.C2S.SharedSubscriptionAvailable), "-"},
	}
	// Columns as text/tabwriter aligns them (widths in runes, two spaces between), without its
	// cost: a summary is written for every connection as it closes.
	var w [2]int
	for _, r := range rows {
		w[0], w[1] = max(w[0], utf8.RuneCountInString(r[0])), max(w[1], utf8.RuneCountInString(r[1]))
	}
	for _, r := range rows {
		for c := range 2 {
			sb.WriteString(r[c])
			for range w[c] + 2 - utf8.RuneCountInString(r[c]) {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(r[2])
		sb.WriteByte('\n')
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// aliasRejected reports whether the record's Topic Alias breaks the receiver's limit (a
// finding answered by 0x94 Topic Alias invalid): the receiver does not map it.
func aliasRejected(r *PacketRecord) bool {
	for i := range r.Notes {
		if r.Notes[i].Reason == decode.TopicAliasInvalid {
			return true
		}
	}
	return false
}
