package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Hex as people paste it into mqscope decode comes in four shapes, told apart in this order:
//
//   - Dumps with an offset column: xxd, hexdump -C, Wireshark's "Copy as Hex Dump", od -t x1.
//     The ASCII column, when there is one, is checked against the bytes before it and left
//     out, so hex-looking words in it are never read as bytes; each offset must match the
//     bytes before it, so a line lost in pasting is an error, not a shorter packet.
//   - C arrays: `unsigned char x[] = {0x10, 0x02, ...};` (xxd -i, Wireshark's "Copy as C
//     Arrays"): the elements inside the braces, C integer literals.
//   - Log lines: a prefix (time stamp, [tags], "TX:", a logger name) and then hex to the end of
//     the line. A line whose end is not hex is left out and counted.
//   - Plain hex: a Wireshark hex stream, bytes separated by spaces, commas, colons, 0x or \x.
//
// Whatever cannot be read unambiguously is an error naming the line, never a guess.

// pastedHex is the bytes of pasted hex and what was left out, for the user to see.
type pastedHex struct {
	data []byte
	// skipped lines had no hex at their end (log lines of other events, headings).
	skipped      int
	firstSkipped string
	firstLine    int
}

// parsePasted reads hex in any of the shapes above.
func parsePasted(s string) (pastedHex, error) {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	switch isDump(lines) {
	case surelyDump:
		b, _, err := parseDump(lines)
		return pastedHex{data: b}, err
	case maybeDump:
		// Lines of hex whose first group is longer are a dump only if the offsets add up.
		if b, confirmed, err := parseDump(lines); confirmed {
			return pastedHex{data: b}, err
		}
	}
	if strings.Contains(s, "{") {
		b, err := parseCArrays(s)
		return pastedHex{data: b}, err
	}
	return parseLogLines(lines)
}

// C arrays.

var (
	cComment = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)
	cDecl    = regexp.MustCompile(`(\w+)\s*\[\s*(\w*)\s*\]\s*=\s*$`)
	cLen     = regexp.MustCompile(`\b(\w+)_len\s*=\s*(\d+)\s*;`)
)

// parseCArrays reads the elements of every brace-enclosed initializer in s, in order.
// A declared size (x[18]) or an xxd -i length (x_len = 18) must match the elements given.
func parseCArrays(s string) ([]byte, error) {
	s = cComment.ReplaceAllString(s, " ")
	var out []byte
	counts := map[string]int{}
	rest := s
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("C array: the { at %q is never closed", snippet(rest[open:]))
		}
		body := rest[open+1 : open+end]
		if strings.Contains(body, "{") {
			return nil, fmt.Errorf("C array: nested braces in %q: give one array of bytes", snippet(rest[open:]))
		}
		n := 0
		for _, el := range strings.Split(body, ",") {
			el = strings.TrimSpace(el)
			if el == "" {
				continue
			}
			v, err := cByte(el)
			if err != nil {
				return nil, fmt.Errorf("C array: element %d %q of %q: %w", n+1, el, snippet(rest[open:]), err)
			}
			out = append(out, v)
			n++
		}
		if m := cDecl.FindStringSubmatch(rest[:open]); m != nil {
			counts[m[1]] = n
			if m[2] != "" {
				size, err := strconv.ParseUint(m[2], 0, 32)
				if err == nil && int(size) != n {
					return nil, fmt.Errorf("C array %s: declared with %d bytes, %d given (C fills the rest with zeros: give every byte)", m[1], size, n)
				}
			}
		}
		rest = rest[open+end+1:]
	}
	for _, m := range cLen.FindAllStringSubmatch(s, -1) {
		if n, ok := counts[m[1]]; ok && m[2] != strconv.Itoa(n) {
			return nil, fmt.Errorf("C array %s: %s_len is %s, but the array holds %d bytes: was it pasted whole?", m[1], m[1], m[2], n)
		}
	}
	return out, nil
}

// cByte reads one C integer literal (0x10, 16, 020) as a byte.
func cByte(el string) (byte, error) {
	t := strings.TrimRight(el, "uU")
	if strings.ContainsRune(t, '_') || strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0O") {
		return 0, fmt.Errorf("not a C integer")
	}
	v, err := strconv.ParseUint(t, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("not a C integer")
	}
	if v > 255 {
		return 0, fmt.Errorf("%d is more than a byte", v)
	}
	return byte(v), nil
}

func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// Dumps with an offset column.

// dumpLine matches a line of a dump: an offset of at least 4 hex digits, maybe a colon, and
// the rest. Lines that are "*" stand for repeats of the line before (hexdump, od).
var dumpLine = regexp.MustCompile(`^([0-9a-fA-F]{4,16})(:?)(?:\s+(.*))?$`)

// dumpKind says how sure it is that lines are a dump with an offset column.
type dumpKind int

const (
	notDump    dumpKind = iota
	maybeDump           // offsets only by their length: a dump if they add up
	surelyDump          // a colon after the offset, or an ASCII column that matches
)

// isDump tells whether every non-blank line has an offset column followed by hex: a first token
// set apart by a colon, or followed by an ASCII column that matches its bytes, or longer than
// the tokens after it.
func isDump(lines []string) dumpKind {
	kind, rows, readable := surelyDump, 0, 0
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || t == "*" {
			continue
		}
		m := dumpLine.FindStringSubmatch(strings.TrimLeft(l, " \t"))
		if m == nil {
			return notDump
		}
		rows++
		toks := strings.Fields(m[3])
		if len(toks) == 0 {
			continue
		}
		r := readRow(m[3])
		switch {
		case r.col[0] != nil || r.col[1] != nil:
			readable++
		case m[2] == ":":
			// xxd's shape: if the line cannot be read, an error names it.
			if r.plain != nil {
				readable++
			}
		case r.plain == nil:
			return notDump
		case len(m[1]) > len(toks[0]):
			kind = maybeDump
			readable++
		default:
			return notDump
		}
	}
	if rows < 2 && kind == maybeDump || readable == 0 {
		return notDump
	}
	return kind
}

// dumpRow is one line of a dump.
type dumpRow struct {
	line   int    // 1-based
	offset string // as written; "" for a "*" line
	rowRead
}

// parseDump reads a dump whose lines isDump accepted. The ASCII column is used when every
// line has one that matches its bytes; offsets are hexadecimal, or octal as od prints them.
// confirmed is whether the offsets added up, so that the lines are a dump even if its bytes
// cannot be read.
func parseDump(lines []string) (_ []byte, confirmed bool, _ error) {
	var rows []dumpRow
	withASCII, width := true, 0
	var asWritten, reversed int // lines whose ASCII column shows their groups' byte order
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		if strings.TrimSpace(t) == "" {
			continue
		}
		if strings.TrimSpace(t) == "*" {
			rows = append(rows, dumpRow{line: i + 1})
			continue
		}
		m := dumpLine.FindStringSubmatch(t)
		r := dumpRow{line: i + 1, offset: m[1]}
		if strings.TrimSpace(m[3]) != "" {
			r.rowRead = readRow(m[3])
			withASCII = withASCII && (r.col[0] != nil || r.col[1] != nil)
			width = max(width, r.width)
			switch {
			case r.col[0] != nil && r.col[1] == nil:
				asWritten++
			case r.col[1] != nil && r.col[0] == nil:
				reversed++
			}
		}
		rows = append(rows, r)
	}
	order := 0
	if reversed > 0 {
		order = 1
	}
	chunks := make([][]byte, len(rows))
	for i, r := range rows {
		switch {
		case !r.data:
		case withASCII:
			chunks[i] = r.col[order]
		case r.plain == nil:
			return nil, false, fmt.Errorf("dump line %d: not hex, and no ASCII column that matches it", r.line)
		default:
			chunks[i] = r.plain
		}
	}
	var out []byte
	var err error
	for _, base := range []int{16, 8} {
		var e error
		if out, e = joinDump(rows, chunks, base, width); e == nil {
			err = nil
			break
		}
		if err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, false, err
	}
	// The offsets add up: this is a dump, and its groups must be readable.
	switch {
	case width > 1 && !withASCII:
		return nil, true, fmt.Errorf("dump without an ASCII column in groups of %d bytes: hexdump and od print words in the byte order of the machine, which the dump does not say; make it with hexdump -C or xxd", width)
	case asWritten > 0 && reversed > 0:
		return nil, true, fmt.Errorf("dump whose ASCII column shows some lines' groups in the order written and some reversed; make it with xxd or hexdump -C")
	case width > 2 && asWritten+reversed == 0:
		return nil, true, fmt.Errorf("dump in groups of %d bytes whose ASCII column does not show their byte order (xxd -e prints them little-endian); make it with xxd or hexdump -C", width)
	}
	return out, true, nil
}

// joinDump puts the lines' bytes together, checking each offset (in base) against the bytes
// before it and expanding "*" lines.
func joinDump(rows []dumpRow, chunks [][]byte, base, width int) ([]byte, error) {
	var out []byte
	var start uint64
	var prev []byte
	star := false
	ended := -1
	for i, r := range rows {
		if r.offset == "" {
			if prev == nil {
				return nil, fmt.Errorf("dump line %d: * with no line before it to repeat", r.line)
			}
			star = true
			continue
		}
		if ended >= 0 {
			return nil, fmt.Errorf("dump line %d: more after the end offset on line %d", r.line, ended)
		}
		off, err := strconv.ParseUint(r.offset, base, 64)
		if err != nil {
			return nil, fmt.Errorf("dump line %d: offset %s is not a number in base %d", r.line, r.offset, base)
		}
		if i == 0 {
			start = off
		}
		if off < start {
			return nil, fmt.Errorf("dump line %d: offset %s is before the first line's", r.line, r.offset)
		}
		at := uint64(len(out))
		if star {
			gap := off - start - at
			if gap > 64<<20 || gap%uint64(len(prev)) != 0 {
				return nil, fmt.Errorf("dump line %d: offset %s does not follow from repeating the line before * (%d bytes)", r.line, r.offset, len(prev))
			}
			for ; gap > 0; gap -= uint64(len(prev)) {
				out = append(out, prev...)
			}
			star = false
			at = uint64(len(out))
		}
		if !r.data && off-start < at && at-(off-start) < uint64(width) {
			// hexdump and od fill the last word of an odd length with zeros; the end offset
			// says where the bytes end.
			out = out[:off-start]
			at = off - start
		}
		if off-start != at {
			return nil, fmt.Errorf("dump line %d: offset %s, but the lines before it hold %d bytes (offset %0*s): a line is missing or repeated",
				r.line, r.offset, at, len(r.offset), strconv.FormatUint(start+at, base))
		}
		if !r.data {
			ended = r.line
			continue
		}
		out = append(out, chunks[i]...)
		prev = chunks[i]
	}
	if star {
		return nil, fmt.Errorf("the dump ends with *: how often the line repeats is not known without the end offset")
	}
	return out, nil
}

// rowRead is what follows the offset of a dump line, read every way it can be.
type rowRead struct {
	data  bool   // the line has more than its offset
	width int    // the widest group of hex digits, in bytes
	plain []byte // all of it as hex, without an ASCII column; nil if it is not
	// col holds the bytes before an ASCII column that shows exactly them, with each group's
	// bytes in the order written ([0]) and reversed ([1], as xxd -e writes them); nil where
	// no column matches.
	col [2][]byte
}

func readRow(rest string) rowRead {
	r := rowRead{data: true}
	r.plain, r.width, _ = hexGroups(rest, false)
	for k, rev := range []bool{false, true} {
		if b, w := asciiSplit(rest, rev); b != nil {
			r.col[k], r.width = b, w
		} else if r.plain != nil && strings.TrimRight(asciiOf(r.plain), " ") == "" {
			// Only spaces (bytes 0x20), whose column was trimmed with the line's end.
			r.col[k], _, _ = hexGroups(rest, rev)
		}
	}
	return r
}

// asciiSplit finds where the hex of a dump line ends and its ASCII column begins, and returns
// the bytes and the widest group: the column is either |...| (hexdump -C), >...< (od -z), or
// set apart by two spaces (xxd, Wireshark), and must show exactly the bytes before it
// (printable ASCII as itself, anything else as '.'; spaces at the end of the line may have been
// trimmed). reversed reads each group of hex digits backwards.
func asciiSplit(rest string, reversed bool) ([]byte, int) {
	for i := 1; i < len(rest); i++ {
		delim := (rest[i] == '|' || rest[i] == '>') && rest[i-1] == ' '
		gap := rest[i] == ' ' && rest[i-1] != ' ' && i+1 < len(rest) && rest[i+1] == ' '
		if !delim && !gap {
			continue
		}
		b, w, err := hexGroups(rest[:i], reversed)
		if err != nil || len(b) == 0 {
			continue
		}
		want, tail := asciiOf(b), strings.TrimRight(rest[i:], " ")
		if delim {
			closing := map[byte]string{'|': "|", '>': "<"}[rest[i]]
			if tail != rest[i:i+1]+want+closing {
				continue
			}
		} else {
			// The column may begin with spaces (bytes 0x20): they run into the gap before it.
			want = strings.TrimRight(want, " ")
			if !strings.HasSuffix(tail, want) || strings.Trim(tail[:len(tail)-len(want)], " ") != "" {
				continue
			}
		}
		return b, w
	}
	return nil, 0
}

// asciiOf renders bytes as the ASCII column of xxd and hexdump -C does.
func asciiOf(b []byte) string {
	s := make([]byte, len(b))
	for i, c := range b {
		if c >= 0x20 && c < 0x7f {
			s[i] = c
		} else {
			s[i] = '.'
		}
	}
	return string(s)
}

// hexGroups reads groups of hex digits separated by white space, each a whole number of
// bytes, and returns the bytes and the widest group; reversed reads each group backwards.
func hexGroups(s string, reversed bool) ([]byte, int, error) {
	var out []byte
	width := 0
	for _, g := range strings.Fields(s) {
		if len(g)%2 != 0 {
			return nil, 0, fmt.Errorf("%q is not a whole number of bytes", g)
		}
		at := len(out)
		for j := 0; j < len(g); j += 2 {
			hi, ok1 := hexVal(g[j])
			lo, ok2 := hexVal(g[j+1])
			if !ok1 || !ok2 {
				return nil, 0, fmt.Errorf("%q is not hex", g)
			}
			out = append(out, byte(hi<<4|lo))
		}
		if reversed {
			slices.Reverse(out[at:])
		}
		width = max(width, len(g)/2)
	}
	return out, width, nil
}

// Log lines.

// timestamp matches dates and times as loggers print them, which parseHex could otherwise
// read as bytes (2026-12-05, 12:00:00).
var timestamp = regexp.MustCompile(`^[\[(]?(\d{4}[-/]\d{2}[-/]\d{2}([T ]|$))?(\d{1,2}:\d{2}:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}:?\d{2})?[\])]?$`)

// gluedHex matches a prefix run into hex without a space ("RX:30", "len=18"), which could be
// read either way.
var gluedHex = regexp.MustCompile(`[:=>]((0[xX])?[0-9a-fA-F]{2,})$`)

// hexNumber matches a word of hex digits alone, which before hex is a dump's offset.
var hexNumber = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// parseLogLines reads each line's hex after its prefix: the words up to the last one that is
// not hex. Lines ending in text are left out (counted); hex before that text is an error.
func parseLogLines(lines []string) (pastedHex, error) {
	var res pastedHex
	for i, l := range lines {
		toks := strings.Fields(l)
		if len(toks) == 0 {
			continue
		}
		last := -1
		data := make([]bool, len(toks))
		for k, t := range toks {
			if timestamp.MatchString(t) {
				last = k
				continue
			}
			if _, err := parseHex(t); err == nil {
				data[k] = true
			} else {
				last = k
			}
		}
		for k := 1; k < last; k++ {
			if data[k-1] && data[k] {
				return res, fmt.Errorf("line %d: hex followed by %q: cannot tell which part is the packet; give only its bytes (after a prefix such as a time stamp or TX:)", i+1, toks[last])
			}
		}
		if last >= 0 && !timestamp.MatchString(toks[last]) {
			if m := gluedHex.FindStringSubmatch(toks[last]); m != nil {
				return res, fmt.Errorf("line %d: %q runs text into hex: is %s part of the packet? Put a space between the prefix and the hex", i+1, toks[last], m[1])
			}
		}
		if last == 0 && hexNumber.MatchString(toks[0]) {
			return res, fmt.Errorf("line %d: %q before the hex looks like the offset of a dump, but the lines are not one whose offsets add up: was a line lost in pasting?", i+1, toks[0])
		}
		if last == len(toks)-1 {
			if res.skipped == 0 {
				res.firstSkipped, res.firstLine = strings.TrimSpace(l), i+1
			}
			res.skipped++
			continue
		}
		b, err := parseHex(strings.Join(toks[last+1:], " "))
		if err != nil {
			return res, fmt.Errorf("line %d: %w", i+1, err)
		}
		res.data = append(res.data, b...)
	}
	if len(res.data) == 0 && res.skipped > 0 {
		// Nothing but lines that do not end in hex: say what is wrong with the first.
		if _, err := parseHex(res.firstSkipped); err != nil {
			return res, fmt.Errorf("line %d: %w", res.firstLine, err)
		}
	}
	return res, nil
}
