package payload

import (
	"encoding/base64"
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
func Fields(r Rendered, data []byte, mode Mode, lim Limits) map[string]any {
	if mode != Preview && mode != Full {
		return nil
	}
	lim = lim.withDefaults()
	fits := func(n int) bool { return mode == Full || n <= lim.PreviewBytes }
	m := map[string]any{
		"payload_format": r.Format,
		"payload_size":   len(data),
	}
	body, truncated := data, false
	if !fits(len(data)) {
		body, truncated = data[:lim.PreviewBytes], true
	}
	switch {
	case r.Format == FormatJSON && r.JSON != nil && fits(len(r.JSON)):
		m["payload"] = r.JSON
		truncated = false
	case r.UTF8:
		if truncated {
			body = utf8Head(body)
		}
		m["payload"] = string(body)
	default:
		m["payload_b64"] = base64.StdEncoding.EncodeToString(body)
	}
	if truncated {
		m["payload_truncated"] = true
	}
	if r.Format != FormatJSON && r.JSON != nil && fits(len(r.JSON)) {
		m["payload_decoded"] = r.JSON
	}
	if r.CompressedSize > 0 {
		m["payload_inflated_size"] = r.Size
	}
	return m
}
