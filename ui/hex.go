package ui

import (
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
// after from (-1 when none). pattern is hex ("de ad", "dead") when it is, else text.
func (d *Detail) FindBytes(pattern string, from int) int {
	want := []byte(pattern)
	if b, ok := parseHex(pattern); ok {
		want = b
	}
	if len(want) == 0 || from > len(d.Raw) {
		return -1
	}
	i := strings.Index(string(d.Raw[from:]), string(want))
	if i < 0 {
		return -1
	}
	return from + i
}

// parseHex reads hex digits, spaces allowed between bytes.
func parseHex(s string) ([]byte, bool) {
	s = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "0x"), " ", "")
	if s == "" || len(s)%2 != 0 {
		return nil, false
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v |= byte(c - 'A' + 10)
			default:
				return nil, false
			}
		}
		out[i] = v
	}
	return out, true
}
