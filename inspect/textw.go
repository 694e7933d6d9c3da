package inspect

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
)

// TextOptions configure the text and summary writers.
type TextOptions struct {
	Color       bool
	Payload     payload.Mode
	ShowSecrets bool
}

// UseColor reports whether output to f should be coloured: f is a terminal, NO_COLOR is unset
// or empty, and TERM is not "dumb".
func UseColor(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" || f == nil {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// ANSI colours.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
	ansiGreen  = "\x1b[32m"
)

type textWriter struct {
	w *bufio.Writer
	o TextOptions
	b []byte
}

// NewTextWriter returns a Writer of one line per packet with its findings indented beneath.
func NewTextWriter(w io.Writer, o TextOptions) Writer {
	return &textWriter{w: bufio.NewWriter(w), o: o}
}

func (t *textWriter) Close() error { return t.w.Flush() }

// Flush writes out what the writer buffers, for live output.
func (t *textWriter) Flush() error { return t.w.Flush() }

func (t *textWriter) Write(r Record) error {
	t.b = AppendText(t.b[:0], r, t.o)
	_, err := t.w.Write(t.b)
	return err
}

func (o TextOptions) paint(b []byte, color, s string) []byte {
	if !o.Color || color == "" {
		return append(b, s...)
	}
	b = append(b, color...)
	b = append(b, s...)
	return append(b, ansiReset...)
}

func levelColor(l decode.Level) string {
	switch l {
	case decode.LevelError:
		return ansiRed
	case decode.LevelWarning:
		return ansiYellow
	}
	return ansiBlue
}

// AppendText appends the text form of a record, newline-terminated, to b.
func AppendText(b []byte, r Record, o TextOptions) []byte {
	switch r := r.(type) {
	case *PacketRecord:
		return packetText(b, r, o)
	case *SessionRecord:
		b = o.paint(b, ansiDim, r.Time.Format("15:04:05.000000"))
		b = fmt.Appendf(b, " [%d]   session  ", r.Conn)
		if g := r.Granted; g.ReasonCode != 0 {
			b = fmt.Appendf(b, "refused: 0x%02X %s", byte(g.ReasonCode), g.Reason)
		} else {
			b = append(b, sessionLine(&r.Effective, r.Version, r.VersionFrom == VersionFromConnect)...)
		}
		if r.TLS != nil {
			b = append(b, "; "...)
			b = append(b, decryptedLine(r.TLS)...)
		}
		return append(b, '\n')
	case *FaultRecord:
		return faultText(b, r, o)
	case *EncryptedRecord:
		b = o.paint(b, ansiDim, r.Time.Format("15:04:05.000000"))
		b = fmt.Appendf(b, " [%d] %s\n", r.Conn, encryptedLine(r))
		return b
	case *CloseRecord:
		b = o.paint(b, ansiDim, r.Time.Format("15:04:05.000000"))
		b = fmt.Appendf(b, " [%d]   %s", r.Conn, closeText(r))
		s := &r.State
		b = append(b, " ("+Plural(s.PacketsC2S+s.PacketsS2C, "packet")...)
		if n := s.Levels["error"]; n > 0 {
			b = append(b, ", "+Plural(n, "error")...)
		}
		if n := s.Levels["warning"]; n > 0 {
			b = append(b, ", "+Plural(n, "warning")...)
		}
		b = append(b, ')')
		if r.TLS != nil && r.TLS.Problem != "" {
			b = append(b, "; TLS: "...)
			b = append(b, r.TLS.Problem...)
		}
		b = append(b, '\n')
		return appendNotes(b, r.Notes, o)
	}
	return b
}

// appendNotes writes findings indented beneath their line.
func appendNotes(b []byte, notes []Note, o TextOptions) []byte {
	for i := range notes {
		n := &notes[i]
		b = append(b, "    "...)
		b = o.paint(b, levelColor(n.Level), fmt.Sprintf("%-7s", n.Level.String()))
		b = append(b, ' ')
		b = o.paint(b, ansiDim, n.Rule)
		b = append(b, "  "...)
		b = append(b, n.Text...)
		b = append(b, '\n')
		if n.Cause != nil {
			b = append(b, "        ↳ caused by "...)
			b = append(b, n.Cause.Summary...)
			b = append(b, '\n')
		}
	}
	return b
}

// sessionLine summarises the effective values on one line.
// sessionLine is the text form of the effective negotiation; connect says whether the CONNECT
// was seen (else what it set is unknown: only the CONNACK's side is shown).
func sessionLine(e *Effective, v decode.Version, connect bool) string {
	var sb strings.Builder
	switch {
	case connect || e.KeepAliveFrom == "server":
		fmt.Fprintf(&sb, "keep alive %d s (%s)", e.KeepAlive, e.KeepAliveFrom)
	default:
		sb.WriteString("no CONNECT seen: keep alive unknown")
	}
	if v != decode.V5 {
		return sb.String()
	}
	if connect {
		fmt.Fprintf(&sb, ", session expiry %s", seconds(e.SessionExpiryInterval))
	}
	lim := func(d string, l *Limits, server bool) {
		fmt.Fprintf(&sb, "; %s receive max %d, max packet %s, alias max %d", d, l.ReceiveMaximum, sizeLimit(l.MaximumPacketSize), l.TopicAliasMaximum)
		if server {
			fmt.Fprintf(&sb, ", max QoS %d, retain %s, wildcard %s, sub id %s, shared %s", l.MaximumQoS,
				yesNo(l.RetainAvailable), yesNo(l.WildcardSubscriptionAvailable), yesNo(l.SubscriptionIdentifiersAvailable), yesNo(l.SharedSubscriptionAvailable))
		}
	}
	lim("c→s", &e.C2S, true)
	if !connect {
		sb.WriteString("; s→c unknown")
		return sb.String()
	}
	lim("s→c", &e.S2C, false)
	return sb.String()
}

func sizeLimit(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func packetText(b []byte, r *PacketRecord, o TextOptions) []byte {
	b = o.paint(b, ansiDim, r.Time.Format("15:04:05.000000"))
	b = fmt.Appendf(b, " [%d] #%-4d %s ", r.Conn, r.Index, r.Dir.Arrow())
	b = packetFields(b, r, o)
	var full *payload.Rendered
	if o.Payload != payload.None {
		if rd := r.Rendered(o.Payload); rd != nil && rd.Format != "" && rd.Format != payload.FormatEmpty {
			if o.Payload == payload.Preview {
				b = append(b, "  "...)
				b = o.paint(b, ansiGreen, rd.Text)
			} else {
				full = rd
				b = fmt.Appendf(b, "  [%s]", rd.Format)
			}
		}
	}
	b = append(b, '\n')
	if full != nil {
		for _, line := range strings.Split(strings.TrimRight(full.Text, "\n"), "\n") {
			b = append(b, "        | "...)
			b = append(b, line...)
			b = append(b, '\n')
		}
	}
	b = appendNotes(b, r.Notes, o)
	if o.Payload != payload.None {
		b = appendNotes(b, r.PayloadNotes(o.Payload), o)
	}
	return b
}

// packetFields is a packet's line from its type on, to its size (and what it responds to).
func packetFields(b []byte, r *PacketRecord, o TextOptions) []byte {
	p := r.Packet
	t := p.Type()
	b = o.paint(b, ansiBold+ansiCyan, fmt.Sprintf("%-11s", t.String()))
	if id, ok := decode.PacketID(p); ok && id != 0 {
		b = fmt.Appendf(b, " id=%d", id)
	}
	switch q := p.(type) {
	case *decode.Connect:
		// Fields the packet ended before are left out: they are unknown, not empty.
		b = fmt.Appendf(b, " v%d", q.ProtocolLevel)
		if q.Read(decode.PartClientID) {
			b = fmt.Appendf(b, " client_id=%q", q.ClientID)
		}
		if q.Read(decode.PartKeepAlive) {
			b = fmt.Appendf(b, " keep_alive=%d", q.KeepAlive)
		}
		if q.CleanStart {
			b = append(b, " clean_start"...)
		}
		if q.HasUsername && q.Read(decode.PartUsername) {
			b = fmt.Appendf(b, " user=%q", q.Username)
		}
		if q.HasPassword && q.Read(decode.PartPassword) {
			if o.ShowSecrets {
				b = fmt.Appendf(b, " password=%q", q.Password)
			} else {
				b = append(b, " password="+Redacted...)
			}
		}
		if w := q.Will; w != nil && q.Read(decode.PartWill) {
			b = fmt.Appendf(b, " will=%q q%d", w.Topic, w.QoS)
			if w.Retain {
				b = append(b, " retain"...)
			}
			b = appendPropsAs(b, "will.", w.Properties, o)
		}
		b = appendProps(b, q.Properties, o)
	case *decode.Connack:
		b = appendReason(b, o, decode.ReasonName(r.Version, t, q.ReasonCode), q.ReasonCode)
		if q.SessionPresent {
			b = append(b, " session_present"...)
		}
		b = appendProps(b, q.Properties, o)
	case *decode.Publish:
		b = fmt.Appendf(b, " %q q%d", r.Topic, q.QoS)
		if q.Retain {
			b = append(b, " retain"...)
		}
		if q.Dup {
			b = append(b, " dup"...)
		}
		if a, ok := q.Properties.TopicAlias(); ok {
			b = fmt.Appendf(b, " alias=%d", a)
		}
		if rt, ok := q.Properties.String(decode.PropResponseTopic); ok {
			b = fmt.Appendf(b, " response_topic=%q", rt)
		}
		if cd, ok := q.Properties.Binary(decode.PropCorrelationData); ok {
			if s, text := payload.CorrelationData(cd); text {
				b = fmt.Appendf(b, " correlation=%q", s)
			} else {
				b = fmt.Appendf(b, " correlation=0x%s", s)
			}
		}
	case *decode.Ack:
		if q.HasReason {
			b = appendReason(b, o, q.ReasonCode.Name(t), q.ReasonCode)
		}
	case *decode.Disconnect:
		if q.HasReason {
			b = appendReason(b, o, q.ReasonCode.Name(t), q.ReasonCode)
		}
		b = appendProps(b, q.Properties, o)
	case *decode.Auth:
		if q.HasReason {
			b = appendReason(b, o, q.ReasonCode.Name(t), q.ReasonCode)
		}
		if m, ok := q.Properties.String(decode.PropAuthMethod); ok {
			b = fmt.Appendf(b, " method=%q", m)
		}
	case *decode.Subscribe:
		for i, s := range q.Subscriptions {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, " %q q%d", s.Filter, s.QoS)
		}
	case *decode.Unsubscribe:
		for i, f := range q.Filters {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, " %q", f)
		}
	case *decode.Suback:
		for i, c := range q.ReasonCodes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendReason(b, o, decode.ReasonName(r.Version, t, c), c)
		}
	case *decode.Unsuback:
		for i, c := range q.ReasonCodes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendReason(b, o, decode.ReasonName(r.Version, t, c), c)
		}
	}
	b = fmt.Appendf(b, " %dB", r.Size())
	if r.Response != nil {
		b = fmt.Appendf(b, " (response to #%d after %s)", r.Response.Request, r.Response.Latency)
	}
	return b
}

// appendProps writes the properties of CONNECT, CONNACK and DISCONNECT as key=value, the
// standard's names in snake_case; binary values as their length, Authentication Data redacted.
func appendProps(b []byte, ps decode.Properties, o TextOptions) []byte {
	return appendPropsAs(b, "", ps, o)
}

// appendPropsAs appends the properties with prefix before each key ("will." for a Will's).
func appendPropsAs(b []byte, prefix string, ps decode.Properties, o TextOptions) []byte {
	for _, p := range ps {
		if !p.ID.Known() {
			continue
		}
		b = append(b, ' ')
		b = append(b, prefix...)
		b = append(b, p.ID.Key()...)
		b = append(b, '=')
		switch p.ID.Type() {
		case decode.TypeString:
			b = appendPropString(b, p.Str, o)
		case decode.TypeStringPair:
			b = appendPropString(b, p.Str+"="+p.Value, o)
		case decode.TypeBinary:
			if p.ID == decode.PropAuthData && !o.ShowSecrets {
				b = append(b, Redacted...)
			} else {
				b = fmt.Appendf(b, "(%d bytes)", len(p.Bin))
			}
		default:
			b = strconv.AppendUint(b, uint64(p.Int), 10)
		}
	}
	return b
}

// propPreview is how many bytes of a string property the one-line form shows, unless payloads
// are shown in full: a long User Property would otherwise push the rest of the line away.
const propPreview = 64

// appendPropString appends s quoted, cut at propPreview bytes (on a character boundary) with
// its full length after it, unless o asks for everything.
func appendPropString(b []byte, s string, o TextOptions) []byte {
	if len(s) <= propPreview || o.Payload == payload.Full {
		return strconv.AppendQuote(b, s)
	}
	cut := propPreview
	// Back to the start of the rune cut; no further when it is not UTF-8 (the quoting escapes it).
	for cut > propPreview-(utf8.UTFMax-1) && !utf8.RuneStart(s[cut]) {
		cut--
	}
	b = strconv.AppendQuote(b, s[:cut])
	return fmt.Appendf(b, "…(%d bytes)", len(s))
}

func appendReason(b []byte, o TextOptions, name string, c decode.ReasonCode) []byte {
	s := fmt.Sprintf(" 0x%02X %s", byte(c), name)
	if c.IsError() {
		return o.paint(b, ansiRed, s)
	}
	return append(b, s...)
}
