package payload

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ellipsis marks text that was cut.
const ellipsis = "…"

// printable reports whether b is UTF-8 text a person would call text: no control characters
// other than tab, line feed, carriage return and form feed, no DEL and no C1 controls.
func printable(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r >= 0x80 && r <= 0x9f {
			return false
		}
		i += n
	}
	return true
}

// escapeText makes b safe to print on a terminal: line feeds and tabs stay, CR LF becomes LF,
// other control characters, bidirectional overrides and bytes that are not UTF-8 are escaped
// the Go way (\r, \x1b, \u202e).
func escapeText(b []byte) string {
	clean := true
	for _, c := range b {
		if c >= utf8.RuneSelf || c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteString(`\x`)
			sb.WriteString(hex.EncodeToString(b[i : i+1]))
		case r == '\r' && i+1 < len(b) && b[i+1] == '\n':
			// dropped: the line feed that follows ends the line
		case r == '\n' || r == '\t':
			sb.WriteRune(r)
		case r < 0x20 || r >= 0x7f && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069:
			q := strconv.QuoteRuneToASCII(r)
			sb.WriteString(q[1 : len(q)-1])
		default:
			sb.WriteRune(r)
		}
		i += n
	}
	return sb.String()
}

// previewLine cuts s to its first non-empty line and at most n runes, and reports whether
// anything was cut, in which case the result ends in the ellipsis.
func previewLine(s string, n int) (string, bool) {
	s = strings.TrimLeft(s, "\n")
	line, cut := s, false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line, cut = s[:i], i+1 < len(s)
	}
	if n < 1 {
		n = 1
	}
	count := 0
	for i := range line {
		if count == n {
			line, cut = line[:i], true
			break
		}
		count++
	}
	if cut {
		return line + ellipsis, true
	}
	return line, false
}

// runePrefix returns the first n runes of b (a byte that is not UTF-8 counts as one).
func runePrefix(b []byte, n int) []byte {
	for i := 0; i < len(b); n-- {
		if n == 0 {
			return b[:i]
		}
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return b
}

// hexDump is the hexdump -C layout: offset, 16 bytes in two groups of 8, printable ASCII.
func hexDump(b []byte) string { return hex.Dump(b) }

// hexBytes is b as hex pairs separated by spaces.
func hexBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	out := make([]byte, 0, 3*len(b)-1)
	for i, c := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = hex.AppendEncode(out, []byte{c})
	}
	return string(out)
}

// CorrelationData renders the Correlation Data property (0x09): the bytes themselves when they
// are printable UTF-8 on one line (isText true), else lower-case hex (isText false).
func CorrelationData(b []byte) (s string, isText bool) {
	if printable(b) && strings.IndexFunc(string(b), func(r rune) bool { return r < 0x20 }) < 0 {
		return string(b), true
	}
	return hex.EncodeToString(b), false
}
