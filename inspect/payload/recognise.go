package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// kind is a form of content that a Content Type can name.
type kind int

const (
	kindUnknown kind = iota
	kindJSON
	kindText
	kindCBOR
	kindProtobuf
	kindBinary
)

func (k kind) String() string {
	return [...]string{"unknown", "JSON", "text", "CBOR", "protobuf", "binary"}[k]
}

// compression is a compressed form a Content Type can name.
type compression int

const (
	noCompression compression = iota
	gzipCompression
	deflateCompression
)

// contentType maps a Content Type to the forms it names: a compression, and the kind of
// content (after decompression). Parameters (";charset=utf-8") are ignored; case is not
// significant. A type it does not know is kindUnknown with noCompression.
func contentType(ct string) (compression, kind) {
	mt := strings.ToLower(strings.TrimSpace(ct))
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	comp := noCompression
	switch {
	case strings.HasSuffix(mt, "+gzip"):
		comp, mt = gzipCompression, strings.TrimSuffix(mt, "+gzip")
	case strings.HasSuffix(mt, "+deflate"):
		comp, mt = deflateCompression, strings.TrimSuffix(mt, "+deflate")
	case strings.HasSuffix(mt, "+zlib"):
		comp, mt = deflateCompression, strings.TrimSuffix(mt, "+zlib")
	}
	switch mt {
	case "application/gzip", "application/x-gzip":
		return gzipCompression, kindUnknown
	case "application/zlib", "application/deflate", "application/x-deflate":
		return deflateCompression, kindUnknown
	case "application/json", "text/json":
		return comp, kindJSON
	case "application/cbor":
		return comp, kindCBOR
	case "application/protobuf", "application/x-protobuf", "application/vnd.google.protobuf",
		"application/x-google-protobuf":
		return comp, kindProtobuf
	case "application/octet-stream":
		return comp, kindBinary
	}
	switch {
	case strings.HasSuffix(mt, "+json"):
		return comp, kindJSON
	case strings.HasSuffix(mt, "+cbor"):
		return comp, kindCBOR
	case strings.HasPrefix(mt, "text/"):
		return comp, kindText
	}
	return comp, kindUnknown
}

// view is one rendering of a payload, before a Preview is cut to a line.
type view struct {
	format     string
	text       string
	json       json.RawMessage
	truncated  bool
	size       int // size of the decompressed content, when compressed > 0
	compressed int // size of the compressed payload, 0 when not compressed
}

// renderer carries the limits and mode through one Render and collects its findings.
type renderer struct {
	lim      Limits
	mode     Mode
	text     bool // the text is wanted (Render, not Recognise)
	problems []Problem
}

func (rr *renderer) problem(p Problem) { rr.problems = append(rr.problems, p) }

func (rr *renderer) full() bool { return rr.mode == Full }

// recognise applies the precedence of the package comment to data (len ≤ MaxDecode).
func (rr *renderer) recognise(data []byte, h Hints, isUTF8 bool) view {
	if h.ContentType != "" {
		comp, k := contentType(h.ContentType)
		if comp != noCompression {
			if v, ok := rr.decompress(data, comp, k, h.ContentType); ok {
				return v
			}
		} else if k != kindUnknown {
			if v, ok := rr.asKind(data, k, isUTF8, false); ok {
				return v
			}
			rr.mismatch(h.ContentType, k, data)
		}
	}
	return rr.sniff(data, h.FormatIndicator == 1 && isUTF8, isUTF8, true)
}

// mismatch records that the Content Type names a form the payload is not in.
func (rr *renderer) mismatch(ct string, k kind, data []byte) {
	why := ""
	switch {
	case (k == kindJSON || k == kindText) && !utf8.Valid(data):
		why = ": it is not UTF-8"
	case k == kindJSON:
		var raw json.RawMessage // validates without building a value
		err := json.Unmarshal(data, &raw)
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			why = fmt.Sprintf(": %v at offset %d", err, syntax.Offset)
		} else if err != nil {
			why = ": " + err.Error()
		}
	case k == kindCBOR:
		if _, err := cborDiag(data, false); err != nil {
			why = ": " + err.Error()
		}
	}
	rr.problem(Problem{Level: LevelWarning, Text: fmt.Sprintf(
		"Content Type %q says %s but the payload is not %s%s; recognised by its content instead",
		ct, k, k, why)})
}

// asKind renders data as k, reporting false when data is not in that form. strict asks for
// the plausibility checks that sniffing needs.
func (rr *renderer) asKind(data []byte, k kind, isUTF8, strict bool) (view, bool) {
	switch k {
	case kindJSON:
		return rr.asJSON(data, isUTF8)
	case kindText:
		if !isUTF8 {
			return view{}, false
		}
		return view{format: FormatText, text: rr.textPrefix(data)}, true
	case kindCBOR:
		return rr.asCBOR(data, strict)
	case kindProtobuf:
		return rr.asProtobuf(data, strict)
	case kindBinary:
		return rr.asBinary(data), true
	}
	return view{}, false
}

// sniff recognises data by its content. textOnly restricts it to JSON and text (Payload
// Format Indicator 1 on UTF-8); compressed allows gzip and deflate (not inside each other).
func (rr *renderer) sniff(data []byte, textOnly, isUTF8, compressed bool) view {
	if len(data) == 0 {
		return view{format: FormatEmpty}
	}
	if v, ok := rr.asJSON(data, isUTF8); ok {
		return v
	}
	if textOnly || printable(data) {
		return view{format: FormatText, text: rr.textPrefix(data)}
	}
	if v, ok := rr.asCBOR(data, true); ok {
		return v
	}
	if compressed {
		if isGzip(data) {
			if v, ok := rr.decompress(data, gzipCompression, kindUnknown, ""); ok {
				return v
			}
		} else if isZlib(data) {
			if v, ok := rr.decompress(data, deflateCompression, kindUnknown, ""); ok {
				return v
			}
		}
	}
	if v, ok := rr.asProtobuf(data, true); ok {
		return v
	}
	return rr.asBinary(data)
}

// undecoded renders a payload larger than MaxDecode: as text when it is UTF-8 and starts
// printable (or is said to be text), else binary.
func (rr *renderer) undecoded(data []byte, isUTF8, textOnly bool) view {
	if isUTF8 && (textOnly || printable(utf8Head(data[:min(len(data), 4096)]))) {
		return view{format: FormatText, text: rr.textPrefix(data)}
	}
	return rr.asBinary(data)
}

// textPrefix escapes UTF-8 data for Text, all of it in Full, else just enough for a preview.
func (rr *renderer) textPrefix(data []byte) string {
	if !rr.text {
		return ""
	}
	if !rr.full() {
		data = runePrefix(data, 4*rr.lim.PreviewChars+4)
	}
	return escapeText(data)
}

func (rr *renderer) asJSON(data []byte, isUTF8 bool) (view, bool) {
	if !isUTF8 || !maybeJSON(data) {
		return view{}, false
	}
	var compact bytes.Buffer
	compact.Grow(len(data))
	if json.Compact(&compact, data) != nil { // also validates, in the same pass
		return view{}, false
	}
	v := view{format: FormatJSON, json: compact.Bytes()}
	switch {
	case !rr.text:
	case rr.full():
		var pretty bytes.Buffer
		if json.Indent(&pretty, compact.Bytes(), "", "  ") == nil {
			v.text = escapeText(pretty.Bytes())
		}
	default:
		v.text = escapeText(runePrefix(compact.Bytes(), 4*rr.lim.PreviewChars+4))
	}
	return v, true
}

func (rr *renderer) asBinary(data []byte) view {
	if !rr.text {
		return view{format: FormatBinary}
	}
	if rr.full() {
		return view{format: FormatBinary, text: strings.TrimSuffix(hexDump(data), "\n")}
	}
	n := (rr.lim.PreviewChars - 1) / 3 // "xx " per byte, and room for " …"

	if n < 1 {
		n = 1
	}
	v := view{format: FormatBinary}
	if len(data) > n {
		data, v.truncated = data[:n], true
	}
	v.text = hexBytes(data)
	if v.truncated {
		v.text += " " + ellipsis
	}
	return v
}

// maybeJSON reports whether data starts the way a JSON value does, to spare the JSON decoder
// (and its buffer) on payloads that plainly are not JSON.
func maybeJSON(data []byte) bool {
	data = bytes.Trim(data, " \t\r\n")
	if len(data) == 0 {
		return false
	}
	switch data[0] {
	case 't', 'f', 'n':
		// A JSON text that starts so is a literal and nothing else: spare text such as "temp=21"
		// a full parse.
		switch string(data) {
		case "true", "false", "null":
			return true
		}
		return false
	}
	return strings.IndexByte(`{["-0123456789`, data[0]) >= 0
}
