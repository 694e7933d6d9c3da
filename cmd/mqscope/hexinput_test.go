package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/internal/peer"
)

// trickyBytes are bytes whose dumps are easy to misread: an ASCII column with hex-looking
// words, the column delimiters | > < and braces, runs of identical lines (printed as *), all
// 256 byte values, and spaces at the end (which editors trim).
func trickyBytes() []byte {
	b := append([]byte{0x30, 0x20}, "dead beef cafe 0123 ab cd"...)
	b = append(b, make([]byte, 64)...)
	b = append(b, "|x{y}| >a< 0x10, 0x20"...)
	for i := range 256 {
		b = append(b, byte(i))
	}
	return append(b, "   "...)
}

// TestDecodePastedDumps makes dumps with xxd, hexdump -C and od and reads them back: the
// bytes must be exactly the file's, also when the lines lost their trailing spaces or gained
// carriage returns in pasting.
func TestDecodePastedDumps(t *testing.T) {
	want := trickyBytes()
	file := filepath.Join(t.TempDir(), "bytes.bin")
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"xxd"}, {"xxd", "-a"}, {"xxd", "-g1"}, {"xxd", "-g4"}, {"xxd", "-g8"}, {"xxd", "-e"}, {"xxd", "-c", "7"},
		{"xxd", "-u"}, {"xxd", "-i"}, {"xxd", "-p"},
		{"hexdump", "-C"}, {"od", "-A", "x", "-t", "x1z"}, {"od", "-t", "x1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			bin := peer.Require(t, args[0])
			dump, err := exec.Command(bin, append(args[1:], file)...).Output()
			if err != nil {
				t.Fatal(err)
			}
			variants := map[string]string{
				"as made":          string(dump),
				"trailing trimmed": regexp.MustCompile(`(?m) +$`).ReplaceAllString(string(dump), ""),
				"CRLF":             strings.ReplaceAll(string(dump), "\n", "\r\n"),
			}
			for name, text := range variants {
				got, err := parsePasted(text)
				if err != nil || !bytes.Equal(got.data, want) {
					t.Errorf("%s: %v; read %d bytes, want the file's %d\n% x\n%s", name, err, len(got.data), len(want), got.data, text)
				}
			}
		})
	}
}

// TestDecodeDumpOutput decodes an xxd dump and a hexdump -C dump of testdata/sample.bin and
// expects what decode --raw prints for the file itself.
func TestDecodeDumpOutput(t *testing.T) {
	sample := filepath.Join("..", "..", "testdata", "sample.bin")
	_, want, _ := runCmd(t, "", "decode", "--raw", sample)
	for _, args := range [][]string{{"xxd"}, {"hexdump", "-C"}, {"xxd", "-i"}} {
		bin := peer.Require(t, args[0])
		dump, err := exec.Command(bin, append(args[1:], sample)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd(t, string(dump), "decode")
		if code != 0 || out != want {
			t.Errorf("%v | mqscope decode: exit %d, stderr %q; output differs from decode --raw:\n%s", args, code, errOut, out)
		}
	}
}

// TestDecodeDumpRefusals: dumps that cannot be read for sure are errors that say why.
func TestDecodeDumpRefusals(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bytes.bin")
	if err := os.WriteFile(file, trickyBytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dump := func(args ...string) string {
		out, err := exec.Command(peer.Require(t, args[0]), append(args[1:], file)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	xxd := dump("xxd")
	lines := strings.SplitAfter(xxd, "\n")
	for _, tc := range []struct{ name, in, want string }{
		// hexdump's and od's default: 16-bit words in the machine's byte order.
		{"hexdump words", dump("hexdump"), "make it with hexdump -C or xxd"},
		{"od words", dump("od", "-x"), "make it with hexdump -C or xxd"},
		{"line lost in pasting", strings.Join(append(lines[:3:3], lines[4:]...), ""), "dump line 4: offset 00000040, but the lines before it hold 48 bytes (offset 00000030): a line is missing"},
		{"byte edited", strings.Replace(xxd, "00000000: 3020", "00000000: 3021", 1), "dump line 1: not hex, and no ASCII column that matches it"},
		{"offsets of a dump that do not add up", "0000000 30 07 00 03 61 2f 62 68\n0000020 69", `line 1: "0000000" before the hex looks like the offset of a dump`},
		{"hexdump -C cut before its end offset", strings.Join(strings.SplitAfter(dump("hexdump", "-C"), "\n")[:4], ""), "ends with *"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.in, "decode")
			if code == 0 || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want an error mentioning %q", code, out, errOut, tc.want)
			}
		})
	}
}

// publish311 is a 3.1.1 PUBLISH to "a/b" with payload "hi".
var publish311 = []byte{
	0x30, 0x07, // PUBLISH, remaining length 7
	0x00, 0x03, 'a', '/', 'b', // topic
	'h', 'i', // payload
}

// TestDecodeLogLines reads hex after the prefixes loggers put before it.
func TestDecodeLogLines(t *testing.T) {
	p := "30 07 00 03 61 2f 62 68 69"
	for _, tc := range []struct {
		name, in string
		skipped  int
	}{
		{"date time and TX", "2026-12-05 07:23:57.123 TX: " + p, 0},
		{"ISO time stamp", "2026-12-05T07:23:57.123456Z RX: " + p, 0},
		{"time stamp alone", "07:23:57 " + p, 0},
		{"brackets", "[07:23:57.001] [mqtt] [conn 3] RX: " + p, 0},
		{"ESP-IDF, level D looks like hex", "D (1234) mqtt_client: " + p, 0},
		{"syslog", "Dec  5 07:23:57 gateway app[42]: >> " + p, 0},
		{"split over lines", "[1] TX: 30 07 00 03\n[2] TX: 61 2f 62 68 69", 0},
		{"with lines of other events", "I (100) wifi: connected\nI (120) mqtt: sending 9 bytes:\nI (121) mqtt: " + p + "\nI (130) mqtt: sent", 3},
		{"wireshark hex stream", "300700036" + "12f6268" + "69", 0},
		{"0x and commas", "RX: 0x30,0x07,0x00,0x03,0x61,0x2f,0x62,0x68,0x69", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePasted(tc.in)
			if err != nil || !bytes.Equal(got.data, publish311) || got.skipped != tc.skipped {
				t.Errorf("read % x, %v, %d lines skipped; want % x, %d skipped", got.data, err, got.skipped, publish311, tc.skipped)
			}
		})
	}
	// The skipped lines are said.
	code, out, errOut := runCmd(t, "connected\nRX: "+p+"\n", "decode", "--version", "4")
	if code != 0 || !strings.Contains(out, `topic                        "a/b"`) || !strings.Contains(errOut, `left out 1 line not ending in hex (line 1: "connected")`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestDecodeLogLineRefusals: a line where the hex cannot be told from the text around it is an
// error naming the line, never bytes read from a prefix or a byte lost to one.
func TestDecodeLogLineRefusals(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"prefix glued to hex", "RX:30 07 00 03 61 2f 62 68 69", `line 1: "RX:30" runs text into hex`},
		{"text inside the hex", "TX: 30 07 00 03 (topic) 61 2f 62 68 69", `line 1: hex followed by "(topic)"`},
		{"ASCII column without offsets", "30 07 00 03 61 2f 62 68  0...a/bh", `line 1: hex followed by "0...a/bh"`},
		{"second line", "TX: 30 07\nTX: 00 03 61 2f 62 68 69 .. a/bhi", `line 2: hex followed by "a/bhi"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.in, "decode")
			if code == 0 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want an error with %q", code, out, errOut, tc.want)
			}
		})
	}
}

// TestDecodeCArrays reads C arrays as xxd -i and Wireshark's "Copy as C Arrays" write them.
func TestDecodeCArrays(t *testing.T) {
	ok := []struct{ name, in string }{
		{"declaration", "unsigned char x[] = {0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x68, 0x69};"},
		{"sized, decimal and octal, comments", "static const uint8_t pkt[9] = { /* PUBLISH */ 48, 7, // header\n 0, 03, 0x61, 0x2F, 0x62, 0x68, 0x69, };"},
		{"braces alone", "{0x30,0x07,0x00,0x03,0x61,0x2f,0x62,0x68,0x69}"},
		{"wireshark, two arrays", "char peer0_0[] = { /* Packet 4 */\n0x30, 0x07, 0x00, 0x03 };\nchar peer0_1[] = { /* Packet 6 */\n0x61, 0x2f, 0x62, 0x68, 0x69 };\n"},
		{"xxd -i", "unsigned char p_bin[] = {\n  0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x68, 0x69\n};\nunsigned int p_bin_len = 9;\n"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePasted(tc.in)
			if err != nil || !bytes.Equal(got.data, publish311) {
				t.Errorf("read % x, %v; want % x", got.data, err, publish311)
			}
		})
	}
	for _, tc := range []struct{ name, in, want string }{
		{"declared size", "unsigned char x[12] = {0x30, 0x07};", "declared with 12 bytes, 2 given"},
		{"xxd -i length", "unsigned char p[] = {0x30, 0x07};\nunsigned int p_len = 9;", "p_len is 9, but the array holds 2 bytes"},
		{"not a byte", "{0x30, 0x107}", `element 2 "0x107"`},
		{"not a number", "{0x30, x}", `element 2 "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, tc.in, "decode")
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want an error with %q", code, errOut, tc.want)
			}
		})
	}
}

// TestDecodeRetries311 decodes a 3.1.1 PUBLISH with no CONNECT before it: malformed as MQTT 5
// (its payload read as a property length), it is decoded as 3.1.1, and a hint says so.
func TestDecodeRetries311(t *testing.T) {
	code, out, errOut := runCmd(t, "", "decode", "30 07 00 03 61 2f 62 68 69")
	if code != 0 || !strings.Contains(out, "#1 PUBLISH (MQTT 3.1.1)") || !strings.Contains(out, `payload                      "hi"`) {
		t.Errorf("exit %d, stdout %q, stderr %q; want the PUBLISH decoded as 3.1.1", code, out, errOut)
	}
	if !strings.Contains(errOut, "decoded as MQTT 3.1.1: no CONNECT gives the version, and as MQTT 5 packet #1 (PUBLISH) at offset 7: property length") {
		t.Errorf("stderr %q does not say why 3.1.1", errOut)
	}
	// --version 5 decodes as 5, and the error stands.
	if code, _, errOut := runCmd(t, "", "decode", "--version", "5", "30 07 00 03 61 2f 62 68 69"); code != 1 || strings.Contains(errOut, "3.1.1") {
		t.Errorf("--version 5: exit %d, stderr %q", code, errOut)
	}
	// Malformed either way: decoded as 5, no hint.
	if code, _, errOut := runCmd(t, "", "decode", "60 02 00 01"); code != 1 || strings.Contains(errOut, "3.1.1") {
		t.Errorf("malformed in both: exit %d, stderr %q", code, errOut)
	}
}

// TestDecodeHexStreamsFromTshark decodes the TCP payloads of real captures as Wireshark's
// "Copy as Hex Stream" gives them, one segment at a time, and compares the packet types and
// topics with tshark's decoding; 3.1.1 segments without their CONNECT are retried as 3.1.1.
func TestDecodeHexStreamsFromTshark(t *testing.T) {
	tshark := peer.Require(t, "tshark")
	retried := 0
	for _, c := range []struct{ file, port string }{{"mqtt311-session.pcapng", "18832"}, {"mqtt5-session.pcapng", "18831"}} {
		out, err := exec.Command(tshark, "-r", filepath.Join("..", "..", "testdata", "captures", c.file), "-d", "tcp.port=="+c.port+",mqtt",
			"-Y", "mqtt", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
			"-e", "tcp.payload", "-e", "mqtt.msgtype", "-e", "mqtt.topic").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := append(strings.Split(line, "\t"), "", "")
			code, js, errOut := runCmd(t, f[0], "decode", "--format", "jsonl")
			if code != 0 {
				t.Errorf("%s: %s: exit %d: %s", c.file, f[0], code, errOut)
				continue
			}
			if strings.Contains(errOut, "decoded as MQTT 3.1.1") {
				retried++
			}
			var types, topics []string
			aliased := false
			for _, r := range jsonLines(t, js) {
				types = append(types, msgType[r["type"].(string)])
				switch r["type"] {
				case "PUBLISH":
					if r["topic"] == "" && r["topic_alias"] != nil {
						// tshark resolves aliases across segments; decode sees one at a time.
						aliased = true
					}
					topics = append(topics, r["topic"].(string))
				case "SUBSCRIBE":
					for _, s := range r["subscriptions"].([]any) {
						topics = append(topics, s.(map[string]any)["filter"].(string))
					}
				case "UNSUBSCRIBE":
					for _, f := range r["filters"].([]any) {
						topics = append(topics, f.(string))
					}
				}
			}
			// tshark names PUBLISH topics and (UN)SUBSCRIBE filters alike mqtt.topic.
			if strings.Join(types, ",") != f[1] || !aliased && strings.Join(topics, ",") != f[2] {
				t.Errorf("%s: %s: types %v topics %v; tshark: %s, %s", c.file, f[0], types, topics, f[1], f[2])
			}
		}
	}
	if retried == 0 {
		t.Error("no 3.1.1 segment was retried as 3.1.1")
	}
}

// msgType is tshark's mqtt.msgtype of each packet type.
var msgType = map[string]string{"CONNECT": "1", "CONNACK": "2", "PUBLISH": "3", "PUBACK": "4", "PUBREC": "5", "PUBREL": "6",
	"PUBCOMP": "7", "SUBSCRIBE": "8", "SUBACK": "9", "UNSUBSCRIBE": "10", "UNSUBACK": "11", "PINGREQ": "12", "PINGRESP": "13",
	"DISCONNECT": "14", "AUTH": "15"}

// TestDecodeRawCapture: --raw on a pcap or pcapng file points to mqscope read.
func TestDecodeRawCapture(t *testing.T) {
	for _, f := range []string{filepath.Join("..", "..", "testdata", "captures", "mqtt5-limits.pcapng"), multiCapture} {
		code, out, errOut := runCmd(t, "", "decode", "--raw", f)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "is a capture (pcapng): use mqscope read "+f) {
			t.Errorf("%s: exit %d, stdout %d bytes, stderr %q", f, code, len(out), errOut)
		}
	}
	pcap := filepath.Join(t.TempDir(), "x.pcap")
	// A pcap header (microseconds, little-endian), Ethernet, no packets.
	os.WriteFile(pcap, []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}, 0o644)
	if code, _, errOut := runCmd(t, "", "decode", "--raw", pcap); code != exitUsage || !strings.Contains(errOut, "is a capture (pcap): use mqscope read") {
		t.Errorf("pcap: exit %d, stderr %q", code, errOut)
	}
	// A compressed capture, as read takes it.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	b, _ := os.ReadFile(multiCapture)
	zw.Write(b)
	zw.Close()
	gzFile := filepath.Join(t.TempDir(), "x.pcapng.gz")
	os.WriteFile(gzFile, gz.Bytes(), 0o644)
	if code, _, errOut := runCmd(t, "", "decode", "--raw", gzFile); code != exitUsage || !strings.Contains(errOut, "is compressed (gzip), not MQTT bytes: if it holds a capture, use mqscope read") {
		t.Errorf("gzip: exit %d, stderr %q", code, errOut)
	}
}

// xxdOf renders b as xxd does by default: offset, 16 bytes in groups of two, ASCII column.
func xxdOf(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		var hexArea strings.Builder
		for i, c := range line {
			fmt.Fprintf(&hexArea, "%02x", c)
			if i%2 == 1 {
				hexArea.WriteByte(' ')
			}
		}
		fmt.Fprintf(&sb, "%08x: %-40s %s\n", off, hexArea.String(), asciiOf(line))
	}
	return sb.String()
}

// hexdumpCOf renders b as hexdump -C does: offset, two halves of 8 bytes, |ASCII|, a line
// repeating the one before shown as *, and the length at the end.
func hexdumpCOf(b []byte) string {
	var sb strings.Builder
	var prev []byte
	starred := false
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		if len(line) == 16 && bytes.Equal(line, prev) {
			if !starred {
				sb.WriteString("*\n")
				starred = true
			}
			continue
		}
		prev, starred = line, false
		var hexArea strings.Builder
		for i, c := range line {
			if i == 8 {
				hexArea.WriteByte(' ')
			}
			fmt.Fprintf(&hexArea, "%02x ", c)
		}
		fmt.Fprintf(&sb, "%08x  %-49s |%s|\n", off, hexArea.String(), asciiOf(line))
	}
	fmt.Fprintf(&sb, "%08x\n", len(b))
	return sb.String()
}

// TestDumpRenderers: the renderers FuzzPastedDumps uses write what xxd and hexdump -C write.
func TestDumpRenderers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bytes.bin")
	for _, b := range [][]byte{trickyBytes(), []byte("x"), bytes.Repeat([]byte{0}, 100)} {
		os.WriteFile(file, b, 0o644)
		for name, render := range map[string]func([]byte) string{"xxd": xxdOf, "hexdump": hexdumpCOf} {
			args := []string{file}
			if name == "hexdump" {
				args = []string{"-C", file}
			}
			want, err := exec.Command(peer.Require(t, name), args...).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := render(b); got != string(want) {
				t.Errorf("%s of %d bytes:\n%s\nwant:\n%s", name, len(b), got, want)
			}
		}
	}
}

// FuzzPastedDumps reads back any bytes rendered as xxd and hexdump -C render them, also with
// the lines' trailing spaces trimmed, and any text at all without a panic.
func FuzzPastedDumps(f *testing.F) {
	f.Add(trickyBytes())
	f.Add(publish311)
	f.Add([]byte("  a  |b| >c<  "))
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePasted(string(b)) // any text: an error or bytes, never a panic
		if len(b) == 0 {
			return
		}
		trim := regexp.MustCompile(`(?m) +$`)
		for name, text := range map[string]string{"xxd": xxdOf(b), "hexdump -C": hexdumpCOf(b)} {
			for _, in := range []string{text, trim.ReplaceAllString(text, "")} {
				got, err := parsePasted(in)
				if err != nil || !bytes.Equal(got.data, b) {
					t.Fatalf("%s of % x: read % x, %v\n%s", name, b, got.data, err, in)
				}
			}
		}
	})
}
