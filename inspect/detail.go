package inspect

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mqscope/mqscope/decode"
)

// DetailOptions control WriteDetail.
type DetailOptions struct {
	ShowSecrets bool // print passwords instead of "<redacted>"
	Bytes       bool // list every field with its offset and bytes
}

// Redacted stands in for secrets unless the user asks to see them.
const Redacted = "<redacted>"

// WriteDetail prints every field, property and problem of one packet, the way a protocol
// analyser's packet-detail pane does. index numbers the packet and offset is where it starts in
// its input.
func WriteDetail(w io.Writer, index int, offset int64, p decode.Packet, o DetailOptions) error {
	b := p.Info()
	ew := &errWriter{w: w}
	ew.printf("#%d %s (MQTT %s) at offset %d, %d bytes\n", index, p.Type(), b.Version, offset, len(b.Raw))
	for _, kv := range PacketValues(p, o.ShowSecrets) {
		ew.printf("  %-28s %s\n", kv.Key, kv.Value)
	}
	if ps := decode.PropertiesOf(p); len(ps) > 0 {
		ew.printf("  properties\n")
		writeProps(ew, "    ", ps, o.ShowSecrets)
	}
	if c, ok := p.(*decode.Connect); ok && c.Will != nil && len(c.Will.Properties) > 0 {
		ew.printf("  will properties\n")
		writeProps(ew, "    ", c.Will.Properties, o.ShowSecrets)
	}
	if o.Bytes {
		ew.printf("  bytes\n")
		for _, f := range b.Fields {
			end := min(f.Offset+f.Len, len(b.Raw))
			raw := b.Raw[min(f.Offset, end):end]
			v := HexBytes(raw, 24)
			if !o.ShowSecrets && secretField(f.Name) {
				// The two bytes of its length, then nothing of the secret.
				n := min(len(raw), 2)
				v = strings.TrimSpace(HexBytes(raw[:n], 2) + " " + Redacted + fmt.Sprintf(" (%d bytes)", len(raw)-n))
			}
			ew.printf("    %04x  %-34s %s\n", offset+int64(f.Offset), f.Name, v)
		}
	}
	for _, pr := range b.Problems {
		ew.printf("  %s at offset %d: %s\n", pr.Level, offset+int64(pr.Offset), ProblemText(pr))
	}
	return ew.err
}

// ProblemText describes a problem without its offset: the message, the rule and the reason code
// a receiver would answer with.
func ProblemText(pr *decode.Problem) string {
	var sb strings.Builder
	sb.WriteString(pr.Message)
	if pr.Rule != "" {
		fmt.Fprintf(&sb, " [%s]", pr.Rule)
	}
	if pr.Level == decode.LevelError && pr.Reason != 0 {
		fmt.Fprintf(&sb, " (a receiver answers 0x%02X %s)", byte(pr.Reason), pr.Reason.Name(decode.DISCONNECT))
	}
	return sb.String()
}

func writeProps(ew *errWriter, indent string, ps decode.Properties, showSecrets bool) {
	for _, p := range ps {
		v := PropertyValue(p)
		if p.ID == decode.PropAuthData && !showSecrets {
			v = fmt.Sprintf("%s (%d bytes)", Redacted, len(p.Bin))
		}
		ew.printf("%s%-26s %s\n", indent, p.ID.Key(), v)
	}
}

// secretField tells whether a field of Info().Fields holds a password or authentication data.
func secretField(name string) bool {
	return name == "password" || name == "properties."+decode.PropAuthData.Key()
}

// KV is one named value of a packet, formatted for people.
type KV struct{ Key, Value string }

// PacketValues lists the fields of p (properties excepted) as people read them. Passwords are
// redacted unless showSecrets.
func PacketValues(p decode.Packet, showSecrets bool) []KV {
	var kv []KV
	add := func(k, f string, args ...any) { kv = append(kv, KV{k, fmt.Sprintf(f, args...)}) }
	h := p.Info().Header
	add("flags", "0x%X", h.Flags)
	add("remaining_length", "%d", h.RemainingLength)
	switch q := p.(type) {
	case *decode.Connect:
		// Fields the packet ended before are left out: they are unknown, not empty.
		add("protocol", "%s level %d", strconv.Quote(q.ProtocolName), q.ProtocolLevel)
		if q.Read(decode.PartFlags) {
			add("clean_start", "%t", q.CleanStart)
		}
		if q.Read(decode.PartKeepAlive) {
			add("keep_alive", "%d s", q.KeepAlive)
		}
		if q.Read(decode.PartClientID) {
			add("client_id", "%s", strconv.Quote(q.ClientID))
		}
		if w := q.Will; w != nil && q.Read(decode.PartWill) {
			add("will.topic", "%s", strconv.Quote(w.Topic))
			add("will.qos", "%d", w.QoS)
			add("will.retain", "%t", w.Retain)
			add("will.payload", "%s", BytesText(w.Payload, 64))
		}
		if q.HasUsername && q.Read(decode.PartUsername) {
			add("username", "%s", strconv.Quote(q.Username))
		}
		if q.HasPassword && q.Read(decode.PartPassword) {
			if showSecrets {
				add("password", "%s", BytesText(q.Password, 64))
			} else {
				add("password", "%s (%d bytes)", Redacted, len(q.Password))
			}
		}
	case *decode.Connack:
		add("session_present", "%t", q.SessionPresent)
		add("reason_code", "%s", reasonText(q.Version, decode.CONNACK, q.ReasonCode))
	case *decode.Publish:
		add("dup", "%t", q.Dup)
		add("qos", "%d", q.QoS)
		add("retain", "%t", q.Retain)
		add("topic", "%s", strconv.Quote(q.Topic))
		if q.QoS > 0 {
			add("packet_id", "%d", q.PacketID)
		}
		add("payload", "%s", BytesText(q.Payload, 64))
	case *decode.Ack:
		add("packet_id", "%d", q.PacketID)
		if q.Version == decode.V5 {
			add("reason_code", "%s", reasonText(q.Version, q.PacketType, q.ReasonCode))
		}
	case *decode.Subscribe:
		add("packet_id", "%d", q.PacketID)
		for i, s := range q.Subscriptions {
			v := fmt.Sprintf("%s qos=%d", strconv.Quote(s.Filter), s.QoS)
			if q.Version == decode.V5 {
				v += fmt.Sprintf(" no_local=%t retain_as_published=%t retain_handling=%d", s.NoLocal, s.RetainAsPublished, s.RetainHandling)
			}
			add(fmt.Sprintf("subscription[%d]", i), "%s", v)
		}
	case *decode.Suback:
		add("packet_id", "%d", q.PacketID)
		for i, c := range q.ReasonCodes {
			add(fmt.Sprintf("reason_code[%d]", i), "%s", reasonText(q.Version, decode.SUBACK, c))
		}
	case *decode.Unsubscribe:
		add("packet_id", "%d", q.PacketID)
		for i, f := range q.Filters {
			add(fmt.Sprintf("filter[%d]", i), "%s", strconv.Quote(f))
		}
	case *decode.Unsuback:
		add("packet_id", "%d", q.PacketID)
		for i, c := range q.ReasonCodes {
			add(fmt.Sprintf("reason_code[%d]", i), "%s", reasonText(q.Version, decode.UNSUBACK, c))
		}
	case *decode.Disconnect:
		if q.Version == decode.V5 {
			add("reason_code", "%s", reasonText(q.Version, decode.DISCONNECT, q.ReasonCode))
		}
	case *decode.Auth:
		add("reason_code", "%s", reasonText(q.Version, decode.AUTH, q.ReasonCode))
	case *decode.Unknown:
		add("body", "%s", BytesText(q.Body, 64))
	}
	return kv
}

func reasonText(v decode.Version, t decode.Type, c decode.ReasonCode) string {
	return fmt.Sprintf("0x%02X %s", byte(c), decode.ReasonName(v, t, c))
}

// PropertyValue formats a property's value for people.
func PropertyValue(p decode.Property) string {
	switch p.ID.Type() {
	case decode.TypeString:
		return strconv.Quote(p.Str)
	case decode.TypeStringPair:
		return strconv.Quote(p.Str) + "=" + strconv.Quote(p.Value)
	case decode.TypeBinary:
		return BytesText(p.Bin, 64)
	}
	return strconv.FormatUint(uint64(p.Int), 10)
}

// BytesText shows b as a quoted string when it is printable UTF-8, else as hex; at most max
// bytes are shown.
func BytesText(b []byte, max int) string {
	if len(b) == 0 {
		return "(empty)"
	}
	cut := b
	more := ""
	if len(cut) > max {
		cut, more = cut[:max], fmt.Sprintf("… (%d bytes)", len(b))
	}
	if printable(cut) {
		return strconv.Quote(string(cut)) + more
	}
	return "0x" + hex.EncodeToString(cut) + more
}

func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if (r == utf8.RuneError && n <= 1) || (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			return false
		}
		b = b[n:]
	}
	return true
}

// HexBytes shows b as hex pairs separated by spaces, at most max of them (then how many there
// are).
func HexBytes(b []byte, max int) string {
	var sb strings.Builder
	for i, c := range b {
		if i == max {
			fmt.Fprintf(&sb, "… (%d bytes)", len(b))
			break
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}

// errWriter remembers the first write error so printing code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
