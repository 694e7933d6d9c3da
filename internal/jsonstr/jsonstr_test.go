package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// reference is encoding/json with the same policy: HTML characters as they are.
func reference(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

var cases = []string{
	"", "plain", `q"uote\back`, "a<b>&c", "tab\tnl\nret\r", "\x00\x01\x1f\x7f",
	"\b\f", "héllo ✓ 𝄞", "bad \xff utf8 \xc3", "line\u2028para\u2029", strings.Repeat("x", 300) + "\"",
}

// TestAgainstEncodingJSON: every string, as a string and as bytes, reads back as encoding/json
// reads it, and is written as encoding/json (SetEscapeHTML(false)) writes it.
func TestAgainstEncodingJSON(t *testing.T) {
	all := append([]string(nil), cases...)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", "\"", "\\", "\x00", "\x1f", "\x7f", "\n", "\b", "<", "&", "é", "\u2028", "\xff", "\xe4\xb8", "🙂"}
	for range 2000 {
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		all = append(all, sb.String())
	}
	for _, s := range all {
		got := string(Append(nil, s))
		if b := string(Append(nil, []byte(s))); b != got {
			t.Errorf("%q: bytes %s, string %s", s, b, got)
		}
		want := reference(t, s)
		if got != want {
			t.Errorf("%q: %s, encoding/json: %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%q: %s does not parse: %v", s, got, err)
		} else if utf8.ValidString(s) && back != s {
			t.Errorf("%q read back as %q", s, back)
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range cases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Append(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: %s does not parse: %v", s, got, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q read back as %q", s, back)
		}
		if want := reference(t, s); string(got) != want {
			t.Fatalf("%q: %s, encoding/json: %s", s, got, want)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	s := "devices/sensor-17/telemetry/temperature"
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = Append(buf[:0], s)
	}
}
