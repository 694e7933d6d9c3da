package decode

import (
	"fmt"
	"unicode/utf8"
)

// MaxVarInt is the largest value a Variable Byte Integer can hold (four bytes).
const MaxVarInt = 268435455

// vbiStatus says why a Variable Byte Integer could not be read.
type vbiStatus uint8

const (
	vbiOK       vbiStatus = iota
	vbiShort              // the bytes end inside the integer: more are needed
	vbiTooLong            // a fourth byte has its continuation bit set
	vbiNotShort           // decoded, but with more bytes than needed (legal to read, a rule broken)
)

// readVBI decodes a Variable Byte Integer at the start of b, returning its value and length.
// A truncated integer yields vbiShort and never a value.
func readVBI(b []byte) (v uint32, n int, st vbiStatus) {
	var mul uint32 = 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, vbiShort
		}
		c := b[i]
		v += uint32(c&0x7f) * mul
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return v, i + 1, vbiNotShort
			}
			return v, i + 1, vbiOK
		}
		mul <<= 7
	}
	return 0, 0, vbiTooLong
}

// VarIntLen returns how many bytes the Variable Byte Integer encoding of v takes.
func VarIntLen(v uint32) int {
	switch {
	case v < 128:
		return 1
	case v < 16384:
		return 2
	case v < 2097152:
		return 3
	}
	return 4
}

// AppendVarInt appends the Variable Byte Integer encoding of v (at most MaxVarInt) to dst.
func AppendVarInt(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if v == 0 {
			return dst
		}
	}
}

// ReadVarInt decodes a Variable Byte Integer at the start of b. It returns the value and the
// number of bytes used; n == 0 with a nil error means b ends inside the integer.
func ReadVarInt(b []byte) (v uint32, n int, err error) {
	v, n, st := readVBI(b)
	switch st {
	case vbiShort:
		return 0, 0, nil
	case vbiTooLong:
		return 0, 0, &Problem{Field: "variable byte integer", Reason: MalformedPacket,
			Category: ErrMalformed, Message: "variable byte integer longer than 4 bytes"}
	}
	return v, n, nil
}

// strIssue is what is wrong with a UTF-8 string, and where.
type strIssue struct {
	at    int // byte offset in the string
	rule  string
	msg   string
	level Level
}

// checkUTF8 checks the standard's rules for UTF-8 encoded strings (section 1.5.4). It returns the
// first error and the first warning found.
func checkUTF8(s []byte) (errIssue, warnIssue *strIssue) {
	// Fast path: printable ASCII only.
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return nil, nil
	}
	for i < len(s) {
		c := s[i]
		if c < 0x80 {
			switch {
			case c == 0:
				if errIssue == nil {
					errIssue = &strIssue{i, "MQTT-1.5.4-2", "string contains the null character U+0000", LevelError}
				}
			case c < 0x20 || c == 0x7f:
				if warnIssue == nil {
					warnIssue = &strIssue{i, ruleControlChar, fmt.Sprintf("string contains the control character U+%04X", c), LevelWarning}
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size <= 1 {
			if errIssue == nil {
				msg := fmt.Sprintf("string is not well-formed UTF-8 (byte 0x%02X)", c)
				if c == 0xED && i+1 < len(s) && s[i+1] >= 0xA0 && s[i+1] <= 0xBF {
					msg = "string encodes a UTF-16 surrogate code point (U+D800..U+DFFF)"
				}
				errIssue = &strIssue{i, "MQTT-1.5.4-1", msg, LevelError}
			}
			i++
			continue
		}
		if warnIssue == nil && ((r >= 0x80 && r <= 0x9f) || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe) {
			what := "control character"
			if r > 0x9f {
				what = "non-character"
			}
			warnIssue = &strIssue{i, ruleControlChar, fmt.Sprintf("string contains the %s U+%04X", what, r), LevelWarning}
		}
		i += size
	}
	return errIssue, warnIssue
}

// ruleControlChar is mqscope's own rule ID for the standard's advice against control characters
// and non-characters in strings (a SHOULD NOT without a numbered statement).
const ruleControlChar = "MQSCOPE-UTF8-CONTROL"

// ValidUTF8 reports whether b is a string the standard allows: well-formed UTF-8 without U+0000.
func ValidUTF8(b []byte) bool {
	e, _ := checkUTF8(b)
	return e == nil
}
