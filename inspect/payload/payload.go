// Package payload recognises and renders the payload of an MQTT PUBLISH or of a Will message.
//
// Render looks at the bytes and at two MQTT 5 properties, Content Type and Payload Format
// Indicator, and decides what the payload is, in this order:
//
//  1. the Content Type, when it names a form this package knows (JSON, text, CBOR, protobuf,
//     octet-stream, gzip or deflate, and the +json, +cbor, +gzip, +deflate suffixes);
//  2. Payload Format Indicator 1: the payload is text, so only JSON and text are tried, and a
//     payload that is not well-formed UTF-8 is a finding (and is then recognised by content);
//  3. by content: JSON; printable UTF-8 text; CBOR; gzip and zlib (deflate), rendered after
//     decompression; protobuf without a schema; otherwise binary, shown as a hex dump.
//
// Plain text is tried before CBOR and protobuf because short text is often valid CBOR or
// protobuf too ("5" is the CBOR integer -22). Content that is only recognised by sniffing has to
// look plausible: CBOR must be a map, array or tag that fills the whole payload, protobuf must
// parse cleanly to the last byte with field numbers below 65536.
//
// Work is bounded per payload: no decoder reads more than Limits.MaxDecode bytes, decompression
// stops at Limits.MaxInflate bytes, CBOR nesting and element counts are capped, protobuf nesting
// is tried to a fixed depth. A Preview renders only a line's worth. The one check that reads the
// whole payload is UTF-8 validity, which runs at memory speed and decides a protocol finding
// that must not depend on the display mode.
package payload

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Mode says how much of a payload is shown.
type Mode int

const (
	// None shows no payload; Render only checks the Payload Format Indicator.
	None Mode = iota
	// Preview shows the first line or Limits.PreviewChars characters.
	Preview
	// Full shows all of it: pretty JSON, the whole text, a whole hex dump.
	Full
)

// ErrMode is returned (wrapped) by ParseMode for a name that is not a mode.
var ErrMode = errors.New("payload mode must be none, preview or full")

// ParseMode parses the value of the --payload flag.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none":
		return None, nil
	case "preview":
		return Preview, nil
	case "full":
		return Full, nil
	}
	return None, fmt.Errorf("%w, not %q", ErrMode, s)
}

// String returns the flag spelling of m.
func (m Mode) String() string {
	switch m {
	case None:
		return "none"
	case Preview:
		return "preview"
	case Full:
		return "full"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Set parses s into m, so that a *Mode can be a command-line flag value.
func (m *Mode) Set(s string) error {
	v, err := ParseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Type names the flag's value in help text.
func (m *Mode) Type() string { return "none|preview|full" }

// Hints are what the packet says about its payload.
type Hints struct {
	// ContentType is the Content Type property (0x03), "" when absent.
	ContentType string
	// FormatIndicator is the Payload Format Indicator property (0x01): -1 when absent, else its
	// value. 0 and absent mean the same ("unspecified bytes"); only 1 changes anything.
	FormatIndicator int
	// Will is true for the Will Message of a CONNECT, false for the payload of a PUBLISH; it
	// only changes which section of the standard a finding cites.
	Will bool
}

// Limits bound the work and the output of Render. A zero field takes its DefaultLimits value.
type Limits struct {
	// PreviewChars is the most characters (runes) of a Preview's Text, before the "…" marker.
	PreviewChars int
	// PreviewBytes is the most payload bytes Fields carries in Preview mode.
	PreviewBytes int
	// MaxDecode is the most bytes any decoder looks at: a bigger payload is shown as text or
	// binary without being decoded.
	MaxDecode int
	// MaxInflate caps the decompressed size of a gzip or deflate payload.
	MaxInflate int
}

// DefaultLimits are the limits used for zero fields of a Limits.
var DefaultLimits = Limits{
	PreviewChars: 80,
	PreviewBytes: 1024,
	MaxDecode:    1 << 20,
	MaxInflate:   1 << 20,
}

func (l Limits) withDefaults() Limits {
	if l.PreviewChars <= 0 {
		l.PreviewChars = DefaultLimits.PreviewChars
	}
	if l.PreviewBytes <= 0 {
		l.PreviewBytes = DefaultLimits.PreviewBytes
	}
	if l.MaxDecode <= 0 {
		l.MaxDecode = DefaultLimits.MaxDecode
	}
	if l.MaxInflate <= 0 {
		l.MaxInflate = DefaultLimits.MaxInflate
	}
	return l
}

// Formats that Render reports. A compressed payload is reported as "gzip+" or "deflate+"
// followed by the format of its decompressed content, e.g. "gzip+json".
const (
	FormatEmpty    = "empty"
	FormatJSON     = "json"
	FormatText     = "text"
	FormatCBOR     = "cbor"
	FormatProtobuf = "protobuf"
	FormatBinary   = "binary"
)

// Levels of a Problem.
const (
	LevelError   = "error"
	LevelWarning = "warning"
	LevelInfo    = "info"
)

// Problem is a finding about a payload.
type Problem struct {
	// Rule is the tag of the standard's statement that was broken, "" when none was. Where
	// the statement has no conformance number of its own, Rule cites its section, as
	// "§3.3.2.3.2".
	Rule string
	// Level is LevelError, LevelWarning or LevelInfo.
	Level string
	// Text says what was found, for a person.
	Text string
}

// Rendered is what Render recognised in a payload and how to show it.
type Rendered struct {
	// Format is what was recognised: one of the Format constants, or "gzip+"/"deflate+" and
	// one of them. It is "" in mode None.
	Format string
	// Text is what a person reads. Preview: one line of at most PreviewChars characters, with
	// "…" when cut (compact JSON, text, CBOR diagnostic notation, protobuf fields, hex bytes).
	// Full: pretty JSON, the whole text, CBOR diagnostic notation, one protobuf field a line,
	// or a hexdump -C style dump. Control characters are escaped.
	Text string
	// JSON is the compact JSON value of the payload when it is JSON, or of its decoded form
	// (decompressed JSON, CBOR converted as RFC 8949 section 6.1 says); nil otherwise.
	JSON json.RawMessage
	// UTF8 reports whether the payload (as sent, not decompressed) is well-formed UTF-8.
	UTF8 bool
	// Size is the size of the content shown: the decompressed size of a compressed payload
	// (at most MaxInflate), else the payload's size.
	Size int
	// CompressedSize is the payload's size when it was decompressed, else 0.
	CompressedSize int
	// Truncated reports that Text does not show all of the content.
	Truncated bool
	// Problems are findings about the payload, in the order they were made.
	Problems []Problem
}

// Render recognises data, the payload of a PUBLISH or Will message with the properties h,
// and renders it for mode within lim. It never panics and does bounded work for any input.
func Render(data []byte, h Hints, mode Mode, lim Limits) Rendered {
	return render(data, h, mode, lim, true)
}

// Recognise is Render without the Text (and Truncated, which is about it): what Fields and
// the payload's findings need, for less work. Every other field is what Render returns.
func Recognise(data []byte, h Hints, mode Mode, lim Limits) Rendered {
	return render(data, h, mode, lim, false)
}

func render(data []byte, h Hints, mode Mode, lim Limits, text bool) Rendered {
	lim = lim.withDefaults()
	r := Rendered{Size: len(data), UTF8: utf8.Valid(data)}
	rr := &renderer{lim: lim, mode: mode, text: text}
	if h.FormatIndicator == 1 && !r.UTF8 {
		rr.problem(badUTF8Problem(data, h.Will))
	}
	if mode != Preview && mode != Full {
		r.Problems = rr.problems
		return r
	}
	var v view
	switch {
	case len(data) == 0:
		v = view{format: FormatEmpty}
	case len(data) > lim.MaxDecode:
		rr.problem(Problem{Level: LevelInfo, Text: fmt.Sprintf(
			"payload of %d bytes is larger than the decode limit of %d bytes: not decoded",
			len(data), lim.MaxDecode)})
		v = rr.undecoded(data, r.UTF8, h.FormatIndicator == 1)
	default:
		v = rr.recognise(data, h, r.UTF8)
	}
	r.Format = v.format
	r.JSON = v.json
	r.Truncated = v.truncated
	if v.compressed > 0 {
		r.CompressedSize = v.compressed
		r.Size = v.size
	}
	r.Text = v.text
	switch {
	case !text:
		r.Text, r.Truncated = "", false // what was computed anyway (CBOR, protobuf)
	case mode == Preview:
		var cut bool
		r.Text, cut = previewLine(v.text, lim.PreviewChars)
		r.Truncated = r.Truncated || cut
	}
	r.Problems = rr.problems
	return r
}

// badUTF8Problem is the finding for Payload Format Indicator 1 on bytes that are not UTF-8.
func badUTF8Problem(data []byte, will bool) Problem {
	off := firstInvalidUTF8(data)
	what, rule, reply := "PUBLISH payload", "§3.3.2.3.2", "PUBACK, PUBREC or DISCONNECT"
	if will {
		what, rule, reply = "Will Message", "§3.1.3.2.3", "CONNACK"
	}
	return Problem{
		Rule:  rule,
		Level: LevelError,
		Text: fmt.Sprintf("Payload Format Indicator is 1 (UTF-8) but the %s is not well-formed UTF-8 "+
			"(byte 0x%02x at offset %d); the receiver may reply with a %s with reason code 0x99 "+
			"(Payload format invalid)", what, data[off], off, reply),
	}
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return 0
}
