package payload

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Fields are the keys a JSON-lines record carries for a payload that Render rendered as r
// (data is the payload as sent, mode and lim as given to Render):
//
//	payload_format          what was recognised (Rendered.Format)
//	payload_size            the payload's size in bytes
//	payload                 the payload: a nested JSON value when it is JSON, else a string,
//	                        when it is UTF-8
//	payload_b64             the payload in standard base64, when it is not UTF-8
//	payload_decoded         the decoded form as a nested JSON value, when it is not the payload
//	                        itself (gzip+json, cbor)
//	payload_inflated_size   the decompressed size, for gzip and deflate
//	payload_truncated       true when payload or payload_b64 holds only the first bytes
//
// In Preview, payload and payload_b64 hold at most lim.PreviewBytes bytes of the payload, a
// nested JSON value is kept only when its compact form fits, and payload_decoded likewise;
// in Full they hold all of it. In None, Fields returns nil.
//
// AppendFields writes the same keys without building a map.
func Fields(r Rendered, data []byte, mode Mode, lim Limits) map[string]any {
	f, ok := fieldsOf(r, data, mode, lim)
	if !ok {
		return nil
	}
	m := map[string]any{
		"payload_format": r.Format,
		"payload_size":   len(data),
	}
	switch {
	case f.json != nil:
		m["payload"] = f.json
	case f.text != nil:
		m["payload"] = string(f.text)
	default:
		m["payload_b64"] = base64.StdEncoding.EncodeToString(f.b64)
	}
	if f.truncated {
		m["payload_truncated"] = true
	}
	if f.decoded != nil {
		m["payload_decoded"] = f.decoded
	}
	if r.CompressedSize > 0 {
		m["payload_inflated_size"] = r.Size
	}
	return m
}

// AppendFields appends the keys of Fields other than payload_size, which the caller places
// itself, to b as members of a JSON object: in the order of their names, each preceded by a
// comma (they follow other members). Strings are escaped as encoding/json escapes them, and
// nested JSON values are written as they are. In None it appends nothing.
func AppendFields(b []byte, r Rendered, data []byte, mode Mode, lim Limits) []byte {
	f, ok := fieldsOf(r, data, mode, lim)
	if !ok {
		return b
	}
	switch {
	case f.json != nil:
		b = appendRaw(append(b, `,"payload":`...), f.json)
	case f.text != nil:
		b = appendJSONString(append(b, `,"payload":`...), f.text)
	default:
		b = append(b, `,"payload_b64":"`...)
		b = append(base64.StdEncoding.AppendEncode(b, f.b64), '"')
	}
	if f.decoded != nil {
		b = appendRaw(append(b, `,"payload_decoded":`...), f.decoded)
	}
	b = appendJSONString(append(b, `,"payload_format":`...), r.Format)
	if r.CompressedSize > 0 {
		b = strconv.AppendInt(append(b, `,"payload_inflated_size":`...), int64(r.Size), 10)
	}
	if f.truncated {
		b = append(b, `,"payload_truncated":true`...)
	}
	return b
}

// fieldSet is what goes in the payload keys besides payload_format, payload_size and
// payload_inflated_size, which come straight from the Rendered.
type fieldSet struct {
	json      json.RawMessage // payload as a nested value, or nil
	text      []byte          // else payload as a string when UTF-8 (non-nil), or nil
	b64       []byte          // else the bytes payload_b64 holds
	truncated bool
	decoded   json.RawMessage // payload_decoded, or nil
}

// fieldsOf decides the payload keys; ok is false in None.
func fieldsOf(r Rendered, data []byte, mode Mode, lim Limits) (f fieldSet, ok bool) {
	if mode != Preview && mode != Full {
		return f, false
	}
	lim = lim.withDefaults()
	fits := func(n int) bool { return mode == Full || n <= lim.PreviewBytes }
	body, truncated := data, false
	if !fits(len(data)) {
		body, truncated = data[:lim.PreviewBytes], true
	}
	switch {
	case r.Format == FormatJSON && r.JSON != nil && fits(len(r.JSON)):
		f.json = r.JSON
		truncated = false
	case r.UTF8:
		if truncated {
			body = utf8Head(body)
		}
		f.text = body
		if f.text == nil {
			f.text = []byte{}
		}
	default:
		f.b64 = body
	}
	f.truncated = truncated
	if r.Format != FormatJSON && r.JSON != nil && fits(len(r.JSON)) {
		f.decoded = r.JSON
	}
	return f, true
}

// appendRaw appends a JSON value as it is ("null" for an empty one, as encoding/json would
// fail on it).
func appendRaw(b []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(b, "null"...)
	}
	return append(b, v...)
}

// jsonSafe holds the ASCII bytes encoding/json writes as they are (HTML characters escaped).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string exactly as encoding/json.Marshal writes it:
// HTML characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString[S []byte | string](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
