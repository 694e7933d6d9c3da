package ui

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// HexLine is one line of the bytes pane: 16 bytes at Offset. Sel marks the bytes selected
// (the field of the tree), Hidden the secret ones (shown as **).
type HexLine struct {
	Offset int
	Bytes  []byte
	Sel    [16]bool
	Hidden [16]bool
}

// HexLines lays out the packet's bytes, the range [sel0, sel1) selected.
func (d *Detail) HexLines(sel0, sel1 int, showSecrets bool) []HexLine {
	var out []HexLine
	for off := 0; off < len(d.Raw); off += 16 {
		l := HexLine{Offset: off, Bytes: d.Raw[off:min(off+16, len(d.Raw))]}
		for i := range l.Bytes {
			at := off + i
			l.Sel[i] = at >= sel0 && at < sel1
			if !showSecrets {
				for _, s := range d.Secret {
					l.Hidden[i] = l.Hidden[i] || at >= s[0] && at < s[1]
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// Text renders the line plainly ("0010  10 2a 00 ...  |..*.|"), selected bytes between
// open and close (e.g. tview's "[::r]" and "[::-]"); escape escapes the printable column.
func (l HexLine) Text(open, close string, escape func(string) string) string {
	var hexs, asc strings.Builder
	in := false
	for i := range 16 {
		if i == 8 {
			hexs.WriteByte(' ')
		}
		if i >= len(l.Bytes) {
			if in {
				hexs.WriteString(close)
				asc.WriteString(close)
				in = false
			}
			hexs.WriteString("   ")
			continue
		}
		if l.Sel[i] != in {
			t := open
			if in {
				t = close
			}
			hexs.WriteString(t)
			asc.WriteString(t)
			in = l.Sel[i]
		}
		c := l.Bytes[i]
		switch {
		case l.Hidden[i]:
			hexs.WriteString("**")
			asc.WriteByte('*')
		default:
			fmt.Fprintf(&hexs, "%02x", c)
			if c >= 0x20 && c < 0x7f {
				asc.WriteString(escape(string(c)))
			} else {
				asc.WriteByte('.')
			}
		}
		hexs.WriteByte(' ')
	}
	if in {
		hexs.WriteString(close)
		asc.WriteString(close)
	}
	return fmt.Sprintf("%04x  %s |%s|", l.Offset, hexs.String(), asc.String())
}

// FindBytes returns the offset of the first occurrence of pattern in the packet's bytes at or
// after from (-1 when none), and how many bytes the pattern stands for. pattern is hex
// ("de ad", "dead", "0xdead") when it is, else text.
func (d *Detail) FindBytes(pattern string, from int) (at, n int) {
	want := []byte(pattern)
	if b, ok := parseHex(pattern); ok {
		want = b
	}
	if len(want) == 0 || from < 0 || from > len(d.Raw) {
		return -1, len(want)
	}
	i := bytes.Index(d.Raw[from:], want)
	if i < 0 {
		return -1, len(want)
	}
	return from + i, len(want)
}

// parseHex reads hex digits, spaces allowed between bytes, after an optional 0x.
func parseHex(s string) ([]byte, bool) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "0x"), " ", ""))
	return b, err == nil && len(b) > 0
}
