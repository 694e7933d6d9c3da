package payload

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// isGzip reports whether data starts with the gzip magic and the deflate method (RFC 1952).
func isGzip(data []byte) bool {
	return len(data) >= 18 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8
}

// isZlib reports whether data starts with a zlib header (RFC 1950): deflate with a window of
// at most 32 KiB, a valid check value, and no preset dictionary.
func isZlib(data []byte) bool {
	if len(data) < 6 {
		return false
	}
	cmf, flg := data[0], data[1]
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0 && flg&0x20 == 0
}

// inflate decompresses data, reading at most max+1 bytes of output. It returns what it got,
// whether there was more than max, and the error that stopped it (nil at a clean end).
func inflate(data []byte, comp compression, max int) (out []byte, more bool, err error) {
	var zr io.Reader
	switch {
	case comp == gzipCompression:
		g, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, false, err
		}
		zr = g
	case isZlib(data):
		z, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, false, err
		}
		zr = z
	default:
		zr = flate.NewReader(bytes.NewReader(data))
	}
	out, err = io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if len(out) > max {
		return out[:max], true, nil
	}
	return out, false, err
}

// decompress renders a gzip or deflate payload by its decompressed content, which is of kind
// k when the Content Type (ct, "" when sniffed) says so. It reports false when data does not
// decompress at all.
func (rr *renderer) decompress(data []byte, comp compression, k kind, ct string) (view, bool) {
	name := "gzip"
	if comp == deflateCompression {
		name = "deflate"
	}
	out, more, err := inflate(data, comp, rr.lim.MaxInflate)
	if len(out) == 0 && err != nil {
		if ct != "" {
			rr.problem(Problem{Level: LevelWarning, Text: fmt.Sprintf(
				"Content Type %q says %s but the payload does not decompress (%v); recognised by its content instead",
				ct, name, err)})
		}
		return view{}, false
	}
	if err != nil {
		rr.problem(Problem{Level: LevelWarning, Text: fmt.Sprintf(
			"the %s stream is damaged (%s): showing the %d bytes it decompressed to",
			name, describeInflateErr(err), len(out))})
	}
	isUTF8 := utf8.Valid(out)
	var inner view
	switch {
	case more || len(out) > rr.lim.MaxDecode:
		limit, what := rr.lim.MaxDecode, "decompressed content is larger than the decode limit of %d bytes: not decoded"
		if more {
			limit, what = rr.lim.MaxInflate, "decompressed content is larger than the inflate limit of %d bytes: only that much is shown, not decoded"
		}
		rr.problem(Problem{Level: LevelInfo, Text: fmt.Sprintf(what, limit)})
		if more {
			out = utf8Head(out)
			isUTF8 = utf8.Valid(out)
		}
		inner = rr.undecoded(out, isUTF8, false)
		inner.truncated = inner.truncated || more
	case k != kindUnknown:
		v, ok := rr.asKind(out, k, isUTF8, false)
		if !ok {
			rr.mismatch(ct, k, out)
			v = rr.sniff(out, false, isUTF8, false)
		}
		inner = v
	default:
		inner = rr.sniff(out, false, isUTF8, false)
	}
	inner.format = name + "+" + inner.format
	inner.size = len(out)
	inner.compressed = len(data)
	return inner, true
}

// utf8Head drops a rune cut in two by a limit at the end of b, so that text cut at a byte
// count is still UTF-8 when it was before.
func utf8Head(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

func describeInflateErr(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends early"
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, zlib.ErrChecksum):
		return "checksum mismatch"
	}
	return err.Error()
}
