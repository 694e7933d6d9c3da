// Package jsonstr writes JSON strings for mqscope's hand-written JSON (the JSON-lines records,
// payload fields, the control API's events), with one escaping policy for all of them:
//
//   - '"' and '\\' are escaped with a backslash; '\n', '\r', '\t', '\b' and '\f' as \n, \r,
//     \t, \b, \f; other control characters (below 0x20) as \u00XX;
//   - '<', '>' and '&' are written as they are: the output is JSON lines, not HTML (this is
//     encoding/json with SetEscapeHTML(false));
//   - invalid UTF-8 becomes U+FFFD (\ufffd); U+2028 and U+2029 are escaped, so that a line is
//     also valid JavaScript.
//
// That is encoding/json's output with SetEscapeHTML(false), byte for byte. Hand-written JSON
// is about ten times faster than encoding/json here (inspect's benchmarks), which is why it
// exists; this package keeps its strings right in one place.
package jsonstr

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// plain holds the ASCII bytes a JSON string holds as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// isPlain reports whether s goes into a JSON string as it is.
func isPlain[S []byte | string](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !plain[c] {
			return false
		}
	}
	return true
}

// Append appends s as a JSON string, quotes included. Runs of bytes that need no escaping are
// copied at once.
func Append[S []byte | string](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	if isPlain(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, n := decodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func decodeRune[S []byte | string](s S) (rune, int) {
	switch s := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(s)
	case []byte:
		return utf8.DecodeRune(s)
	}
	return utf8.RuneError, 1
}

// Marshal is json.Marshal with this package's policy (HTML characters as they are), for the
// values hand-written JSON does not cover.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
