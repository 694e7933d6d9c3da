package main

import (
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

Hex may contain spaces, newlines, commas, colons and 0x prefixes, as copied from a device log.
The protocol version comes from a CONNECT in the input, else --version, else MQTT 5.
The exit status is 1 when the input is not hex, ends inside a packet, or a packet is malformed.`,
		Example: `  mqscope decode 10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 14 00 00
  mqscope decode --raw testdata/sample.bin --bytes
  echo "0x30,0x07,0x00,0x03,0x61,0x2f,0x62,0x68,0x69" | mqscope decode --version 4 --format jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.hex = args
			if o.raw != "" && len(args) > 0 {
				return usageError{errors.New("give hex arguments or --raw FILE, not both")}
			}
			switch o.version {
			case 0, 3, 4, 5:
			default:
				return usageError{fmt.Errorf("--version %d: want 3, 4 or 5", o.version)}
			}
			if o.format != "text" && o.format != "jsonl" {
				return usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
			}
			return runDecode(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.raw, "raw", "", "read raw bytes from `FILE` (- for standard input)")
	f.IntVar(&o.version, "version", 0, "protocol level of the input: 3 (3.1), 4 (3.1.1) or 5 (default: from a CONNECT, else 5)")
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "print passwords instead of redacting them")
	f.BoolVar(&o.bytes, "bytes", false, "list every field with its offset and bytes")
	f.Var(&o.payload, "payload", "payloads in JSON lines: none, preview or full")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
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
		v = detectVersion(data)
	}
	out := packetOutput(o)
	var bad []string
	off := 0
	for i := 1; off < len(data); i++ {
		n, err := decode.SplitFrame(data[off:], 0)
		if err != nil {
			var pr *decode.Problem
			if errors.As(err, &pr) {
				pr.Offset += off
			}
			bad = append(bad, fmt.Sprintf("packet #%d at offset %d: %v", i, off, err))
			break
		}
		if n == 0 {
			h, _, _ := decode.ParseHeader(data[off:])
			msg := fmt.Sprintf("input ends inside packet #%d at offset %d", i, off)
			if h.HeaderLen > 0 {
				msg += fmt.Sprintf(": %s announces %d bytes, only %d present", h.Type, h.HeaderLen+h.RemainingLength, len(data)-off)
			}
			// Show what can be read of the truncated packet too.
			p := decode.Decode(data[off:], v)
			if err := out(i, int64(off), p); err != nil {
				return err
			}
			bad = append(bad, msg)
			break
		}
		p := decode.Decode(data[off:off+n], v)
		if c, ok := p.(*decode.Connect); ok && o.version == 0 && c.Version.Valid() {
			v = c.Version
		}
		if err := out(i, int64(off), p); err != nil {
			return err
		}
		for _, pr := range p.Info().Problems {
			if pr.Level == decode.LevelError {
				bad = append(bad, fmt.Sprintf("packet #%d (%s) at offset %d: %s", i, p.Type(), off+pr.Offset, inspect.ProblemText(pr)))
			}
		}
		off += n
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	return nil
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

// detectVersion returns the protocol level of the first CONNECT in data, else MQTT 5.
func detectVersion(data []byte) decode.Version {
	for off := 0; off < len(data); {
		n, err := decode.SplitFrame(data[off:], 0)
		if err != nil || n == 0 {
			break
		}
		if v, ok := decode.PeekVersion(data[off : off+n]); ok && v.Valid() {
			return v
		}
		off += n
	}
	return decode.V5
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
		return b, nil
	case len(o.hex) > 0:
		return parseHex(strings.Join(o.hex, " "))
	}
	b, err := io.ReadAll(o.io.In)
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	return parseHex(string(b))
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
