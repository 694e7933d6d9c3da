package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fieldsViaMap is how the JSON-lines writer wrote the payload keys before AppendFields: the map
// of Fields in key order, payload_size left out, nested values as they are, the rest through
// encoding/json (HTML characters as they are). AppendFields must write the same bytes.
func fieldsViaMap(r Rendered, data []byte, mode Mode, lim Limits) string {
	m := Fields(r, data, mode, lim)
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "payload_size" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		b = append(b, `,"`+k+`":`...)
		if raw, ok := m[k].(json.RawMessage); ok && len(raw) > 0 {
			b = append(b, raw...)
			continue
		}
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false) // mqscope's policy (package jsonstr): JSON lines, not HTML
		if err := enc.Encode(m[k]); err != nil {
			v.Reset()
			v.WriteString("null")
		}
		b = append(b, bytes.TrimSuffix(v.Bytes(), []byte("\n"))...)
	}
	return string(b)
}

// checkRecognise checks that Recognise is Render without Text and Truncated.
func checkRecognise(t *testing.T, data []byte, h Hints, mode Mode, lim Limits) {
	t.Helper()
	want := Render(data, h, mode, lim)
	want.Text, want.Truncated = "", false
	if got := Recognise(data, h, mode, lim); !reflect.DeepEqual(got, want) {
		t.Fatalf("payload %q (%+v, mode %v):\nRecognise %+v\nRender    %+v", data, h, mode, got, want)
	}
}

func checkAppendFields(t *testing.T, data []byte, h Hints, mode Mode, lim Limits) {
	t.Helper()
	r := Render(data, h, mode, lim)
	got := string(AppendFields(nil, r, data, mode, lim))
	if want := fieldsViaMap(r, data, mode, lim); got != want {
		t.Fatalf("payload %q (%+v, mode %v):\nAppendFields %s\nvia the map  %s", data, h, mode, got, want)
	}
}

// TestFieldsAndRecognise checks AppendFields and Recognise on tricky strings and every render
// case, in every mode.
func TestFieldsAndRecognise(t *testing.T) {
	tricky := []string{
		"", "plain", `quote " backslash \ slash /`, "<b>&amp;</b>", "tab\tnl\ncr\rbs\bff\fnul\x00esc\x1bdel\x7f",
		"é ü 中文 🙂", "line\u2028para\u2029", "bad \xff utf8 \xc3", "cut rune \xe4\xb8",
		`{"html":"<&>","ls":"\u2028"}`, `["a\u0000b"]`, strings.Repeat("ab<", 600), strings.Repeat("é", 700),
	}
	var cases []renderCase
	for _, s := range tricky {
		for _, h := range []Hints{absent, {ContentType: "text/plain", FormatIndicator: 1}, {ContentType: "application/octet-stream"}} {
			cases = append(cases, renderCase{data: []byte(s), hints: h})
		}
	}
	cases = append(cases, renderCases(t)...)
	for _, tc := range cases {
		for _, mode := range []Mode{None, Preview, Full} {
			checkAppendFields(t, tc.data, tc.hints, mode, Limits{})
			checkAppendFields(t, tc.data, tc.hints, mode, fuzzLimits)
			checkRecognise(t, tc.data, tc.hints, mode, Limits{})
			checkRecognise(t, tc.data, tc.hints, mode, fuzzLimits)
		}
	}
}

// Fields is AppendFields as a map, for tests that compare with encoding/json.
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
