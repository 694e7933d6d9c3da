package payload

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/mqscope/mqscope/internal/jsonstr"
)

// AppendFields appends to b the keys a JSON-lines record carries for a payload that Render
// rendered as r (data is the payload as sent, mode and lim as given to Render):
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
// in Full they hold all of it. In None it appends nothing.
//
// It appends them, but for payload_size, which the caller places itself, as members of a JSON
// object: in the order of their names, each preceded by a comma (they follow other members). Strings are escaped as package jsonstr says, and
// nested JSON values are written as they are.
func AppendFields(b []byte, r Rendered, data []byte, mode Mode, lim Limits) []byte {
	f, ok := fieldsOf(r, data, mode, lim)
	if !ok {
		return b
	}
	switch {
	case f.json != nil:
		b = appendRaw(append(b, `,"payload":`...), f.json)
	case f.text != nil:
		b = jsonstr.Append(append(b, `,"payload":`...), f.text)
	default:
		b = append(b, `,"payload_b64":"`...)
		b = append(base64.StdEncoding.AppendEncode(b, f.b64), '"')
	}
	if f.decoded != nil {
		b = appendRaw(append(b, `,"payload_decoded":`...), f.decoded)
	}
	b = jsonstr.Append(append(b, `,"payload_format":`...), r.Format)
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
