package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
)

type decodeOptions struct {
	io          *streams
	hex         []string // hex given as arguments
	raw         string   // --raw FILE
	version     int      // 0: from a CONNECT in the input, else 5
	format      string
	showSecrets bool
	bytes       bool
	payload     payload.Mode
}

func newDecodeCmd(io *streams) *cobra.Command {
	o := &decodeOptions{io: io, payload: payload.Full}
	cmd := &cobra.Command{
		Use:   "decode [HEX...]",
		Short: "Decode MQTT packets from hex or raw bytes",
		Long: `Decode MQTT packets given as hex (as arguments, or on standard input) or as raw bytes
(--raw FILE), and print every packet with all its fields, properties and problems.

Hex is read as people paste it: bytes with or without spaces, commas, colons, 0x or \x;
log lines, whose prefixes (time stamps, [tags], TX:, RX:) are left out; dumps of xxd,
hexdump -C, od -t x1 and Wireshark's "Copy as Hex Dump", whose offsets must add up and whose
ASCII column is checked and left out; Wireshark's hex stream; C arrays (xxd -i, Wireshark's
"Copy as C Arrays"). What cannot be read for sure is an error naming the line.

The protocol version comes from --version, else a CONNECT in the input, else MQTT 5; without a
CONNECT, packets malformed as MQTT 5 but whole as 3.1.1 are decoded as 3.1.1, and a note says so.
Passwords and authentication data are redacted, in --bytes too, unless --show-secrets.
The exit status is 1 when the input is not hex, ends inside a packet, or a packet is malformed.`,
		Example: `  mqscope decode 10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 14 00 00
  mqscope decode --raw testdata/sample.bin --bytes
  echo "0x30,0x07,0x00,0x03,0x61,0x2f,0x62,0x68,0x69" | mqscope decode --version 4 --format jsonl
  xxd packet.bin | mqscope decode
  grep 'RX:' device.log | mqscope decode`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.hex = args
			if o.raw != "" && len(args) > 0 {
				return usageError{errors.New("give hex arguments or --raw FILE, not both")}
			}
			if err := checkVersion(o.version); err != nil {
				return err
			}
			if o.format != "text" && o.format != "jsonl" {
				return usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
			}
			return runDecode(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.raw, "raw", "", "read raw bytes from `FILE` (- for standard input)")
	versionFlag(f, &o.version, "protocol level of the input: 3 (3.1), 4 (3.1.1) or 5 (default: from a CONNECT, else 5)")
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "print passwords instead of redacting them")
	f.BoolVar(&o.bytes, "bytes", false, "list every field with its offset and bytes")
	f.Var(&o.payload, "payload", "payloads in JSON lines: none, preview or full")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("payload", cobra.FixedCompletions(payloadModes(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("version", cobra.FixedCompletions([]string{"3", "4", "5"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runDecode(o *decodeOptions) error {
	data, err := decodeInput(o)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return errors.New("no input: give hex as arguments, on standard input, or --raw FILE")
	}
	v := decode.Version(o.version)
	if v == 0 {
		var connect bool
		if v, connect = connectVersion(data); v == 0 {
			v = decode.V5
		}
		if !connect {
			// No CONNECT says the version: a packet malformed as MQTT 5 but whole as 3.1.1 is
			// most likely 3.1.1, whose packets lack the properties 5 adds.
			if bad5 := firstError(data, decode.V5); bad5 != "" && firstError(data, decode.V311) == "" {
				v = decode.V311
				fmt.Fprintf(o.io.Err, "mqscope: decoded as MQTT 3.1.1: no CONNECT gives the version, and as MQTT 5 %s (--version 5 decodes as 5)\n", bad5)
			}
		}
	}
	return decodePackets(o, data, v)
}

// decodePackets prints every packet in data, and returns an error listing the problems.
func decodePackets(o *decodeOptions, data []byte, v decode.Version) error {
	out := packetOutput(o)
	var bad []string
	err := eachPacket(data, v, o.version == 0, func(i, off int, p decode.Packet, problem string) error {
		if p != nil {
			if err := out(i, int64(off), p); err != nil {
				return err
			}
		}
		if problem != "" {
			bad = append(bad, problem)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s:\n  %s", inspect.Plural(len(bad), "problem"), strings.Join(bad, "\n  "))
	}
	return nil
}

// eachPacket decodes data packet by packet as version v (or the version of a CONNECT in it,
// when follow) and calls f with each packet and each problem: a packet's errors, a frame that
// cannot be split (p nil), or the input ending inside a packet.
func eachPacket(data []byte, v decode.Version, follow bool, f func(i, off int, p decode.Packet, problem string) error) error {
	off := 0
	for i := 1; off < len(data); i++ {
		n, err := decode.SplitFrame(data[off:], 0)
		if err != nil {
			return f(i, off, nil, fmt.Sprintf("packet #%d at offset %d: %v", i, off, err))
		}
		if n == 0 {
			h, _, _ := decode.ParseHeader(data[off:])
			msg := fmt.Sprintf("input ends inside packet #%d at offset %d", i, off)
			if h.HeaderLen > 0 {
				msg += fmt.Sprintf(": %s announces %d bytes, only %d present", h.Type, h.HeaderLen+h.RemainingLength, len(data)-off)
			}
			// Show what can be read of the truncated packet too.
			return f(i, off, decode.Decode(data[off:], v), msg)
		}
		p := decode.Decode(data[off:off+n], v)
		if c, ok := p.(*decode.Connect); ok && follow && c.Version.Valid() {
			v = c.Version
		}
		show, typ := p, p.Type()
		for _, pr := range p.Info().Problems {
			if pr.Level == decode.LevelError {
				if err := f(i, off, show, fmt.Sprintf("packet #%d (%s) at offset %d: %s", i, typ, off+pr.Offset, inspect.ProblemText(pr))); err != nil {
					return err
				}
				show = nil // shown once, with its first problem
			}
		}
		if show != nil {
			if err := f(i, off, show, ""); err != nil {
				return err
			}
		}
		off += n
	}
	return nil
}

// firstError decodes data as version v and describes its first error, or returns "".
func firstError(data []byte, v decode.Version) string {
	first := ""
	_ = eachPacket(data, v, false, func(_, _ int, _ decode.Packet, problem string) error {
		if first == "" {
			first = problem
		}
		return nil
	})
	return first
}

// packetOutput returns the function that prints one decoded packet in the chosen format.
func packetOutput(o *decodeOptions) func(index int, offset int64, p decode.Packet) error {
	if o.format == "jsonl" {
		return func(index int, offset int64, p decode.Packet) error {
			return inspect.WriteDetailJSON(o.io.Out, index, offset, p, o.payload, o.showSecrets)
		}
	}
	first := true
	return func(index int, offset int64, p decode.Packet) error {
		if !first {
			fmt.Fprintln(o.io.Out)
		}
		first = false
		return inspect.WriteDetail(o.io.Out, index, offset, p, inspect.DetailOptions{ShowSecrets: o.showSecrets, Bytes: o.bytes})
	}
}

// connectVersion returns the protocol level of the first CONNECT in data that has a valid one,
// and whether data has a CONNECT at all.
func connectVersion(data []byte) (v decode.Version, connect bool) {
	for off := 0; off < len(data); {
		n, err := decode.SplitFrame(data[off:], 0)
		if err != nil || n == 0 {
			break
		}
		connect = connect || decode.Type(data[off]>>4) == decode.CONNECT
		if v, ok := decode.PeekVersion(data[off : off+n]); ok && v.Valid() {
			return v, true
		}
		off += n
	}
	return 0, connect
}

// decodeInput returns the bytes to decode from the arguments, --raw, or standard input.
func decodeInput(o *decodeOptions) ([]byte, error) {
	switch {
	case o.raw == "-":
		return io.ReadAll(o.io.In)
	case o.raw != "":
		b, err := os.ReadFile(o.raw)
		if err != nil {
			return nil, fmt.Errorf("reading raw bytes: %w", err)
		}
		if kind := captureKind(b); kind != "" {
			return nil, usageError{fmt.Errorf("%s is a capture (%s): use mqscope read %s", o.raw, kind, o.raw)}
		}
		if kind := compressedKind(b); kind != "" {
			return nil, usageError{fmt.Errorf("%s is compressed (%s), not MQTT bytes: if it holds a capture, use mqscope read %s", o.raw, kind, o.raw)}
		}
		return b, nil
	}
	text := strings.Join(o.hex, " ")
	if len(o.hex) == 0 {
		b, err := io.ReadAll(o.io.In)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		text = string(b)
	}
	in, err := parsePasted(text)
	if err != nil {
		return nil, err
	}
	if in.skipped > 0 {
		fmt.Fprintf(o.io.Err, "mqscope: left out %s not ending in hex (line %d: %q)\n", inspect.Plural(in.skipped, "line"), in.firstLine, snippet(in.firstSkipped))
	}
	return in.data, nil
}

// compressedKind names the compression when b begins like a gzip, zstd or lz4 file, else "".
// No MQTT stream begins so: these bytes would be a CONNECT or CONNACK with flags the standard
// forbids, or the reserved type 0.
func compressedKind(b []byte) string {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return "gzip"
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == 0xFD2FB528:
		return "zstd"
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == 0x184D2204:
		return "lz4"
	}
	return ""
}

// captureKind names the file format when b begins like a pcap or pcapng file, else "".
func captureKind(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	switch binary.BigEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return "pcap"
	case 0x0a0d0d0a:
		return "pcapng"
	}
	return ""
}

// parseHex turns hex as copied from a log into bytes: separators (white space, commas, colons,
// semicolons, dashes) and 0x or \x prefixes are allowed between bytes; a pair of digits may also
// run on without separators.
func parseHex(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)/2)
	digit := -1 // pending high nibble
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == 'x' || c == 'X') && i > 0 && digit == 0 && (s[i-1] == '0') && (i < 2 || !isHex(s[i-2])) {
			digit = -1 // the "0" of a 0x prefix was taken as a nibble: drop it
			continue
		}
		if c == '\\' && i+1 < len(s) && s[i+1] == 'x' {
			i++
			continue
		}
		if v, ok := hexVal(c); ok {
			if digit < 0 {
				digit = v
				continue
			}
			out = append(out, byte(digit<<4|v))
			digit = -1
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r', ',', ':', ';', '-':
			if digit >= 0 {
				return nil, fmt.Errorf("hex input: odd digit %q before offset %d of the text (byte %d)", s[i-1], i, len(out))
			}
			continue
		}
		return nil, fmt.Errorf("hex input: %q at character %d (byte %d) is not a hex digit", c, i+1, len(out))
	}
	if digit >= 0 {
		return nil, fmt.Errorf("hex input: odd number of hex digits (a lone digit at the end, after byte %d)", len(out))
	}
	return out, nil
}

func isHex(c byte) bool { _, ok := hexVal(c); return ok }

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
