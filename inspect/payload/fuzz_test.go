package payload

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"unicode/utf8"
)

// fuzzLimits are small so that the fuzzer reaches the limits.
var fuzzLimits = Limits{PreviewChars: 40, PreviewBytes: 256, MaxDecode: 64 << 10, MaxInflate: 64 << 10}

// FuzzRender checks, for any payload and properties, that Render does not panic, is
// deterministic, keeps a Preview to one bounded line and a Full rendering within a constant
// factor of the content, writes only printable text, that its JSON and Fields are JSON,
// that AppendFields writes what Fields holds, and that Recognise is Render without the text.
func FuzzRender(f *testing.F) {
	contentTypes := []string{"", "application/json", "text/plain", "application/cbor", "application/x-protobuf",
		"application/octet-stream", "application/gzip", "application/deflate", "application/json+gzip", "x/unknown"}
	for i, tc := range renderCases(f) {
		f.Add(tc.data, tc.hints.ContentType, int8(tc.hints.FormatIndicator), tc.hints.Will, tc.mode == Full)
		f.Add(tc.data, contentTypes[i%len(contentTypes)], int8(1), false, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, ct string, pfi int8, will, full bool) {
		h := Hints{ContentType: ct, FormatIndicator: int(pfi), Will: will}
		mode := Preview
		if full {
			mode = Full
		}
		r := Render(data, h, mode, fuzzLimits)
		if again := Render(data, h, mode, fuzzLimits); !reflect.DeepEqual(r, again) {
			t.Fatalf("not deterministic:\n%+v\n%+v", r, again)
		}
		if r.Format == "" {
			t.Fatal("no format")
		}
		if !utf8.ValidString(r.Text) {
			t.Fatalf("Text is not UTF-8: %q", r.Text)
		}
		for _, c := range r.Text {
			if c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f && c <= 0x9f {
				t.Fatalf("Text has control character %U: %q", c, r.Text)
			}
		}
		if mode == Preview {
			if n := utf8.RuneCountInString(r.Text); n > fuzzLimits.PreviewChars+1 {
				t.Fatalf("preview is %d characters: %q", n, r.Text)
			}
			if bytes.ContainsRune([]byte(r.Text), '\n') {
				t.Fatalf("preview has more than one line: %q", r.Text)
			}
		} else if bound := 64*max(len(data), r.Size) + 1024; len(r.Text) > bound {
			t.Fatalf("full text is %d bytes for %d bytes of content", len(r.Text), max(len(data), r.Size))
		}
		if r.Size > max(len(data), fuzzLimits.MaxInflate) {
			t.Fatalf("Size %d", r.Size)
		}
		if r.JSON != nil && !json.Valid(r.JSON) {
			t.Fatalf("JSON is not valid: %q", r.JSON)
		}
		if r.Format == FormatJSON {
			var got, want any
			if json.Unmarshal(r.JSON, &got) != nil || json.Unmarshal(data, &want) != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("JSON %s does not decode to what %q decodes to", r.JSON, data)
			}
		}
		if pfi == 1 && !utf8.Valid(data) && (len(r.Problems) == 0 || r.Problems[0].Level != LevelError) {
			t.Fatalf("indicator 1 on bytes that are not UTF-8, but problems %+v", r.Problems)
		}
		if _, err := json.Marshal(Fields(r, data, mode, fuzzLimits)); err != nil {
			t.Fatalf("Fields: %v", err)
		}
		checkAppendFields(t, data, h, mode, fuzzLimits)
		checkRecognise(t, data, h, mode, fuzzLimits)
		CorrelationData(data)
	})
}

func BenchmarkRenderJSON100B(b *testing.B) {
	data := []byte(`{"device":"th-17","ts":1700000000,"temp":21.53,"hum":48.2,"bat":3.71,"ok":true,"fw":"1.4.2-build17"}`)
	if len(data) != 100 {
		b.Fatalf("payload is %d bytes", len(data))
	}
	h := Hints{ContentType: "application/json", FormatIndicator: 1}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Render(data, h, Preview, Limits{})
	}
}

// BenchmarkRenderJSON1MiB is the most work one payload can cost with DefaultLimits: it is
// decoded in full (MaxDecode) to tell whether it is JSON.
func BenchmarkRenderJSON1MiB(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"readings":[`)
	for buf.Len() < 1<<20-32 {
		buf.WriteString(`{"t":1700000000,"v":21.53},`)
	}
	buf.WriteString(`{"t":0,"v":0}]}`)
	data := buf.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Render(data, absent, Preview, Limits{})
	}
}

func BenchmarkRenderBinary1MiB(b *testing.B) {
	data := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'q', 's', 'c', 'o', 'p', 'e'}))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Render(data, absent, Preview, Limits{})
	}
}

// BenchmarkRenderText4MiB is a payload beyond MaxDecode: not decoded, only checked for UTF-8.
func BenchmarkRenderText4MiB(b *testing.B) {
	data := bytes.Repeat([]byte("2024-05-01T12:00:00Z sensor th-17 temp=21.5 hum=48\n"), 4<<20/51)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Render(data, absent, Preview, Limits{})
	}
}
