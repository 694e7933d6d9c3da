package payload

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

// absent is the Hints of a payload without properties (MQTT 3.1.1, or none set).
var absent = Hints{FormatIndicator: -1}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zl(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawDeflate(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cborOf encodes v with the library, keys sorted so that the bytes are stable.
func cborOf(t testing.TB, v any) []byte {
	t.Helper()
	em, err := cbor.EncOptions{Sort: cbor.SortCanonical}.EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sensorProto is {1: 150, 2: "testing", 3: {1: 5}, 4: fixed32 1.0f}.
func sensorProto() []byte {
	var sub, b []byte
	sub = protowire.AppendTag(sub, 1, protowire.VarintType)
	sub = protowire.AppendVarint(sub, 5)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 150)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "testing")
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, sub)
	b = protowire.AppendTag(b, 4, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 0x3f800000)
	return b
}

type renderCase struct {
	name    string
	data    []byte
	hints   Hints
	mode    Mode
	format  string
	text    string // exact Text, unless "" and textHas is set
	textHas string
	json    string // compact JSON value, "" for none
	trunc   bool
	rules   []string // Rule of each Problem, "" for a finding without one
}

func renderCases(t testing.TB) []renderCase {
	sensorJSON := []byte(`{"temp": 21.5, "unit": "C", "ok": true}`)
	cborSensor := cborOf(t, map[string]any{"id": "dev-1", "t": 21.5, "raw": []byte{1, 2}})
	long := strings.Repeat("abcdefghij", 10)
	return []renderCase{
		// JSON
		{name: "json by content type", data: sensorJSON, hints: Hints{ContentType: "application/json", FormatIndicator: -1},
			mode: Preview, format: "json", text: `{"temp":21.5,"unit":"C","ok":true}`, json: `{"temp":21.5,"unit":"C","ok":true}`},
		{name: "json content type with parameters", data: sensorJSON, hints: Hints{ContentType: " Application/JSON; charset=utf-8", FormatIndicator: -1},
			mode: Preview, format: "json", json: `{"temp":21.5,"unit":"C","ok":true}`, textHas: `"temp":21.5`},
		{name: "json +json suffix", data: []byte(`[1,2]`), hints: Hints{ContentType: "application/senml+json", FormatIndicator: -1},
			mode: Preview, format: "json", text: `[1,2]`, json: `[1,2]`},
		{name: "json sniffed", data: sensorJSON, hints: absent, mode: Preview, format: "json",
			text: `{"temp":21.5,"unit":"C","ok":true}`, json: `{"temp":21.5,"unit":"C","ok":true}`},
		{name: "json full is pretty", data: []byte(`{"a":[1,2],"b":"x"}`), hints: absent, mode: Full, format: "json",
			text: "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"x\"\n}", json: `{"a":[1,2],"b":"x"}`},
		{name: "json number, not CBOR", data: []byte("5"), hints: absent, mode: Preview, format: "json", text: "5", json: "5"},
		{name: "json preview cut", data: []byte(`{"k":"` + long + `"}`), hints: absent, mode: Preview, format: "json",
			text: `{"k":"` + long[:74] + ellipsis, trunc: true, json: `{"k":"` + long + `"}`},

		// text
		{name: "text sniffed", data: []byte("hello world"), hints: absent, mode: Preview, format: "text", text: "hello world"},
		{name: "text first line", data: []byte("line one\r\nline two\n"), hints: absent, mode: Preview, format: "text",
			text: "line one" + ellipsis, trunc: true},
		{name: "text full keeps lines", data: []byte("line one\r\nline two\n"), hints: absent, mode: Full, format: "text",
			text: "line one\nline two\n"},
		{name: "text cut at 80 characters", data: []byte(long), hints: absent, mode: Preview, format: "text",
			text: long[:80] + ellipsis, trunc: true},
		{name: "text counts characters not bytes", data: []byte(strings.Repeat("é", 100)), hints: absent, mode: Preview,
			format: "text", text: strings.Repeat("é", 80) + ellipsis, trunc: true},
		{name: "text content type over JSON", data: sensorJSON, hints: Hints{ContentType: "text/plain", FormatIndicator: -1},
			mode: Preview, format: "text", text: string(sensorJSON)},
		{name: "text indicator 1 keeps controls escaped", data: []byte("a\x1b[31mred\x00"), hints: Hints{FormatIndicator: 1},
			mode: Preview, format: "text", text: `a\x1b[31mred\x00`},
		{name: "text indicator 1 still finds JSON", data: sensorJSON, hints: Hints{FormatIndicator: 1},
			mode: Preview, format: "json", json: `{"temp":21.5,"unit":"C","ok":true}`, textHas: `"unit":"C"`},

		// Payload Format Indicator 1 on bytes that are not UTF-8
		{name: "indicator 1 not UTF-8", data: []byte("temp=\xff\xfe"), hints: Hints{FormatIndicator: 1}, mode: Preview,
			format: "binary", text: "74 65 6d 70 3d ff fe", rules: []string{"§3.3.2.3.2"}},
		{name: "indicator 1 not UTF-8 in a Will", data: []byte("\xc3\x28"), hints: Hints{FormatIndicator: 1, Will: true},
			mode: Preview, format: "binary", text: "c3 28", rules: []string{"§3.1.3.2.3"}},
		{name: "indicator 1 on gzip", data: gz(t, sensorJSON), hints: Hints{FormatIndicator: 1}, mode: Preview,
			format: "gzip+json", json: `{"temp":21.5,"unit":"C","ok":true}`, textHas: `{"temp"`, rules: []string{"§3.3.2.3.2"}},
		{name: "indicator 0 on binary", data: []byte{0xff, 0x00}, hints: Hints{FormatIndicator: 0}, mode: Preview,
			format: "binary", text: "ff 00"},
		{name: "indicator checked in mode none", data: []byte{0xff}, hints: Hints{FormatIndicator: 1}, mode: None,
			format: "", text: "", rules: []string{"§3.3.2.3.2"}},

		// CBOR
		{name: "cbor sniffed", data: cborSensor, hints: absent, mode: Preview, format: "cbor",
			text: `{"t": 21.5, "id": "dev-1", "raw": h'0102'}`, json: `{"id":"dev-1","raw":"AQI","t":21.5}`},
		{name: "cbor full", data: cborSensor, hints: absent, mode: Full, format: "cbor",
			text: "{\n  \"t\": 21.5,\n  \"id\": \"dev-1\",\n  \"raw\": h'0102'\n}", json: `{"id":"dev-1","raw":"AQI","t":21.5}`},
		{name: "cbor integer keys and tags", data: cborOf(t, map[int]any{1: cbor.Tag{Number: 1, Content: 1700000000}, 2: []any{true, nil}}),
			hints: absent, mode: Full, format: "cbor", text: "{\n  1: 1(1700000000),\n  2: [\n    true,\n    null\n  ]\n}",
			json: `{"1":"2023-11-14T22:13:20Z","2":[true,null]}`},
		{name: "cbor by content type, a bare number", data: []byte{0x18, 0x64}, hints: Hints{ContentType: "application/cbor", FormatIndicator: -1},
			mode: Preview, format: "cbor", text: "100", json: "100"},
		{name: "cbor content type on garbage", data: []byte{0xff, 0x00, 0x01}, hints: Hints{ContentType: "application/cbor", FormatIndicator: -1},
			mode: Preview, format: "binary", text: "ff 00 01", rules: []string{""}},
		{name: "single byte is binary, not CBOR", data: []byte{0x05}, hints: absent, mode: Preview, format: "binary", text: "05"},

		// compressed
		{name: "gzip json sniffed", data: gz(t, sensorJSON), hints: absent, mode: Preview, format: "gzip+json",
			text: `{"temp":21.5,"unit":"C","ok":true}`, json: `{"temp":21.5,"unit":"C","ok":true}`},
		{name: "gzip by content type", data: gz(t, []byte("plain words")), hints: Hints{ContentType: "application/gzip", FormatIndicator: -1},
			mode: Preview, format: "gzip+text", text: "plain words"},
		{name: "gzip suffix names the inner form", data: gz(t, sensorJSON), hints: Hints{ContentType: "application/json+gzip", FormatIndicator: -1},
			mode: Preview, format: "gzip+json", json: `{"temp":21.5,"unit":"C","ok":true}`, textHas: `"ok":true`},
		{name: "gzip of cbor", data: gz(t, cborSensor), hints: absent, mode: Preview, format: "gzip+cbor",
			json: `{"id":"dev-1","raw":"AQI","t":21.5}`, textHas: `"id": "dev-1"`},
		{name: "zlib sniffed as deflate", data: zl(t, []byte("zipped text")), hints: absent, mode: Preview, format: "deflate+text",
			text: "zipped text"},
		{name: "raw deflate by content type", data: rawDeflate(t, []byte("raw deflate")), hints: Hints{ContentType: "application/deflate", FormatIndicator: -1},
			mode: Preview, format: "deflate+text", text: "raw deflate"},
		{name: "gzip content type on plain text", data: []byte("not compressed"), hints: Hints{ContentType: "application/gzip", FormatIndicator: -1},
			mode: Preview, format: "text", text: "not compressed", rules: []string{""}},
		{name: "gzip cut short", data: gz(t, []byte(strings.Repeat("data ", 50)))[:30], hints: absent, mode: Preview,
			format: "gzip+text", textHas: "data data", trunc: true, rules: []string{""}},

		// protobuf
		{name: "protobuf sniffed", data: sensorProto(), hints: absent, mode: Preview, format: "protobuf",
			text: `1: 150, 2: "testing", 3: {1: 5}, 4: 0x3f800000`},
		{name: "protobuf full", data: sensorProto(), hints: Hints{ContentType: "application/x-protobuf", FormatIndicator: -1},
			mode: Full, format: "protobuf",
			text: "1 varint: 150\n2 len: \"testing\"\n3 len: {\n  1 varint: 5\n}\n4 i32: 0x3f800000 (uint 1065353216, float 1)"},
		{name: "protobuf big field number by content type", data: protowire.AppendVarint(protowire.AppendTag(nil, 100000, protowire.VarintType), 1),
			hints: Hints{ContentType: "application/protobuf", FormatIndicator: -1}, mode: Preview, format: "protobuf", text: "100000: 1"},
		{name: "protobuf big field number not sniffed", data: protowire.AppendVarint(protowire.AppendTag(nil, 100000, protowire.VarintType), 1),
			hints: absent, mode: Preview, format: "binary", text: "80 ea 30 01"},
		{name: "protobuf that does not end cleanly is binary", data: append(sensorProto(), 0x08), hints: absent, mode: Preview,
			format: "binary", textHas: "08 96 01"},
		{name: "protobuf groups are not accepted", data: []byte{0x0b, 0x08, 0x01, 0x0c}, hints: absent, mode: Preview, format: "binary",
			text: "0b 08 01 0c"},

		// binary and the rest
		{name: "binary preview", data: []byte{0x00, 0x01, 0x02, 0xff}, hints: absent, mode: Preview, format: "binary", text: "00 01 02 ff"},
		{name: "binary full is a hex dump", data: []byte("\x00\x01ABCDEFGHIJKLMNOP\xff"), hints: absent, mode: Full, format: "binary",
			text: "00000000  00 01 41 42 43 44 45 46  47 48 49 4a 4b 4c 4d 4e  |..ABCDEFGHIJKLMN|\n" +
				"00000010  4f 50 ff                                          |OP.|"},
		{name: "binary preview cut", data: bytes.Repeat([]byte{0x00, 0xee}, 100), hints: absent, mode: Preview, format: "binary",
			text: strings.TrimSpace(strings.Repeat("00 ee ", 13)) + " " + ellipsis, trunc: true},
		{name: "octet-stream content type wins over JSON", data: []byte(`{}`), hints: Hints{ContentType: "application/octet-stream", FormatIndicator: -1},
			mode: Preview, format: "binary", text: "7b 7d"},
		{name: "json content type on text", data: []byte("not json"), hints: Hints{ContentType: "application/json", FormatIndicator: -1},
			mode: Preview, format: "text", text: "not json", rules: []string{""}},
		{name: "text content type on bytes that are not UTF-8", data: []byte{'o', 'k', 0xff}, hints: Hints{ContentType: "text/plain", FormatIndicator: -1},
			mode: Preview, format: "binary", text: "6f 6b ff", rules: []string{""}},
		{name: "protobuf content type on a broken message", data: []byte{0x0a, 0x05, 'a'}, hints: Hints{ContentType: "application/protobuf", FormatIndicator: -1},
			mode: Preview, format: "binary", text: "0a 05 61", rules: []string{""}},
		{name: "unknown content type is sniffed", data: sensorJSON, hints: Hints{ContentType: "application/x-vendor", FormatIndicator: -1},
			mode: Preview, format: "json", textHas: `"temp"`, json: `{"temp":21.5,"unit":"C","ok":true}`},
		{name: "content type over indicator", data: cborSensor, hints: Hints{ContentType: "application/cbor", FormatIndicator: 1},
			mode: Preview, format: "cbor", textHas: `"id": "dev-1"`, json: `{"id":"dev-1","raw":"AQI","t":21.5}`, rules: []string{"§3.3.2.3.2"}},
		{name: "empty", data: nil, hints: absent, mode: Preview, format: "empty", text: ""},
		{name: "empty with indicator 1", data: []byte{}, hints: Hints{FormatIndicator: 1}, mode: Full, format: "empty", text: ""},
	}
}

func TestRender(t *testing.T) {
	for _, tc := range renderCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			r := Render(tc.data, tc.hints, tc.mode, Limits{})
			if r.Format != tc.format {
				t.Errorf("Format = %q, want %q (Text %q)", r.Format, tc.format, r.Text)
			}
			if tc.textHas != "" {
				if !strings.Contains(r.Text, tc.textHas) {
					t.Errorf("Text = %q, want it to contain %q", r.Text, tc.textHas)
				}
			} else if r.Text != tc.text {
				t.Errorf("Text =\n%s\nwant\n%s", r.Text, tc.text)
			}
			if string(r.JSON) != tc.json {
				t.Errorf("JSON = %s, want %s", r.JSON, tc.json)
			}
			if r.JSON != nil && !json.Valid(r.JSON) {
				t.Errorf("JSON %q is not valid JSON", r.JSON)
			}
			if r.Truncated != tc.trunc {
				t.Errorf("Truncated = %v, want %v", r.Truncated, tc.trunc)
			}
			var rules []string
			for _, p := range r.Problems {
				rules = append(rules, p.Rule)
			}
			if strings.Join(rules, "|") != strings.Join(tc.rules, "|") || len(rules) != len(tc.rules) {
				t.Errorf("problems = %+v, want rules %q", r.Problems, tc.rules)
			}
		})
	}
}

func TestRenderBadUTF8Problem(t *testing.T) {
	r := Render([]byte("ok\xffrest"), Hints{FormatIndicator: 1}, Preview, Limits{})
	if len(r.Problems) != 1 {
		t.Fatalf("problems = %+v, want one", r.Problems)
	}
	p := r.Problems[0]
	if p.Level != LevelError || p.Rule != "§3.3.2.3.2" || !strings.Contains(p.Text, "offset 2") || !strings.Contains(p.Text, "0x99") {
		t.Errorf("problem = %+v", p)
	}
	if r.UTF8 {
		t.Error("UTF8 = true for invalid UTF-8")
	}
}

func TestRenderSizes(t *testing.T) {
	plain := []byte(`{"readings":[` + strings.Repeat(`1.5,`, 200) + `2]}`)
	packed := gz(t, plain)
	r := Render(packed, absent, Preview, Limits{})
	if r.Format != "gzip+json" || r.CompressedSize != len(packed) || r.Size != len(plain) {
		t.Errorf("got %s, compressed %d, size %d; want gzip+json, %d, %d", r.Format, r.CompressedSize, r.Size, len(packed), len(plain))
	}
	if r := Render(plain, absent, Preview, Limits{}); r.CompressedSize != 0 || r.Size != len(plain) {
		t.Errorf("uncompressed: compressed %d, size %d", r.CompressedSize, r.Size)
	}
}

func TestRenderGzipBombIsBounded(t *testing.T) {
	// 16 MiB of zeros compresses to about 16 KiB: 64 times the limit.
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 16 {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxInflate: 256 << 10}
	start := time.Now()
	for _, mode := range []Mode{Preview, Full} {
		r := Render(buf.Bytes(), absent, mode, lim)
		if r.Format != "gzip+text" && r.Format != "gzip+binary" {
			t.Errorf("%s: Format = %q", mode, r.Format)
		}
		if r.Size != lim.MaxInflate || !r.Truncated {
			t.Errorf("%s: Size = %d, Truncated = %v; want %d, true", mode, r.Size, r.Truncated, lim.MaxInflate)
		}
		if mode == Full && len(r.Text) > 5*lim.MaxInflate {
			t.Errorf("%s: Text is %d bytes", mode, len(r.Text))
		}
		if len(r.Problems) != 1 || r.Problems[0].Level != LevelInfo {
			t.Errorf("%s: problems = %+v", mode, r.Problems)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rendering the bomb took %v", d)
	}
}

func TestRenderLargePayloadIsNotDecoded(t *testing.T) {
	lim := Limits{MaxDecode: 1024}
	big := []byte(`{"k":"` + strings.Repeat("v", 2000) + `"}`)
	r := Render(big, absent, Preview, lim)
	if r.Format != "text" || r.JSON != nil || !r.Truncated || len(r.Problems) != 1 {
		t.Errorf("got %+v", r)
	}
	if n := len([]rune(r.Text)); n != 81 {
		t.Errorf("preview is %d characters, want 80 and the ellipsis", n)
	}
	bin := bytes.Repeat([]byte{0xfe}, 5000)
	r = Render(bin, absent, Full, lim)
	if r.Format != "binary" || strings.Count(r.Text, "\n") != (5000+15)/16-1 {
		t.Errorf("full binary: format %q, %d lines", r.Format, strings.Count(r.Text, "\n")+1)
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
	}{{"none", None}, {"preview", Preview}, {"FULL", Full}, {" full ", Full}} {
		got, err := ParseMode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != strings.ToLower(strings.TrimSpace(tc.in)) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	if _, err := ParseMode("all"); !errors.Is(err, ErrMode) {
		t.Errorf("ParseMode(all) error = %v, want ErrMode", err)
	}
	var m Mode
	if err := m.Set("full"); err != nil || m != Full {
		t.Errorf("Set(full) = %v, mode %v", err, m)
	}
}

func TestFields(t *testing.T) {
	sensor := []byte(`{"temp": 21.5}`)
	packed := gz(t, sensor)
	long := []byte(strings.Repeat("x", 3000))
	bin := []byte{0xde, 0xad, 0xbe, 0xef}
	for _, tc := range []struct {
		name string
		data []byte
		mode Mode
		want string
	}{
		{"json nested", sensor, Preview, `{"payload":{"temp":21.5},"payload_format":"json","payload_size":14}`},
		{"text", []byte("hi there"), Preview, `{"payload":"hi there","payload_format":"text","payload_size":8}`},
		{"binary", bin, Full, `{"payload_b64":"3q2+7w==","payload_format":"binary","payload_size":4}`},
		{"gzip json", packed, Full, `{"payload_b64":"` + b64(packed) + `","payload_decoded":{"temp":21.5},"payload_format":"gzip+json","payload_inflated_size":14,"payload_size":` + itoa(len(packed)) + `}`},
		{"text preview bounded", long, Preview, `{"payload":"` + strings.Repeat("x", 1024) + `","payload_format":"text","payload_size":3000,"payload_truncated":true}`},
		{"text full", long, Full, `{"payload":"` + string(long) + `","payload_format":"text","payload_size":3000}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Render(tc.data, absent, tc.mode, Limits{})
			got, err := json.Marshal(Fields(r, tc.data, tc.mode, Limits{}))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if f := Fields(Render(sensor, absent, None, Limits{}), sensor, None, Limits{}); f != nil {
		t.Errorf("mode none: %v", f)
	}
	// A big JSON payload in preview is cut as text, and says so.
	bigJSON := []byte(`{"k":"` + strings.Repeat("v", 2000) + `"}`)
	f := Fields(Render(bigJSON, absent, Preview, Limits{}), bigJSON, Preview, Limits{})
	if s, ok := f["payload"].(string); !ok || len(s) != 1024 || f["payload_truncated"] != true {
		t.Errorf("big JSON preview: %T payload, truncated %v", f["payload"], f["payload_truncated"])
	}
}

func TestCorrelationData(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		want   string
		isText bool
	}{
		{[]byte("req-42"), "req-42", true},
		{[]byte("zürich"), "zürich", true},
		{[]byte{0x00, 0x01, 0xab}, "0001ab", false},
		{[]byte("two\nlines"), "74776f0a6c696e6573", false},
		{[]byte{0xff}, "ff", false},
		{nil, "", true},
	} {
		got, isText := CorrelationData(tc.in)
		if got != tc.want || isText != tc.isText {
			t.Errorf("CorrelationData(%q) = %q, %v; want %q, %v", tc.in, got, isText, tc.want, tc.isText)
		}
	}
}

func TestPrettyEDN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, `[]`},
		{`{"a": [], "b": {}}`, "{\n  \"a\": [],\n  \"b\": {}\n}"},
		{`[_ 1, "x, [y]"]`, "[_\n  1,\n  \"x, [y]\"\n]"},
		{`(_ h'01', h'02')`, `(_ h'01', h'02')`},
		{`["a\"]", 2]`, "[\n  \"a\\\"]\",\n  2\n]"},
		{`]]}`, "\n]\n]\n}"},
	} {
		if got := prettyEDN(tc.in); got != tc.want {
			t.Errorf("prettyEDN(%q) =\n%s\nwant\n%s", tc.in, got, tc.want)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func itoa(n int) string { return strconv.Itoa(n) }

// TestJSONLiteralsAndLookalikes: a payload is JSON exactly when encoding/json says it is valid,
// for the literals and for text that merely starts like one.
func TestJSONLiteralsAndLookalikes(t *testing.T) {
	for _, s := range []string{"true", " false\n", "null", "nullx", "t", "temp=21", "fan on", "no", "n", "truefalse",
		"true false", "42", "-1.5e3", "12 apples", `"quoted"`, "[1,2]", "{}", "{", "\ttrue\t"} {
		r := Render([]byte(s), absent, Preview, Limits{})
		if got, want := r.Format == FormatJSON, json.Valid([]byte(s)); got != want {
			t.Errorf("%q: recognised as %s, json.Valid %v", s, r.Format, want)
		}
	}
}
