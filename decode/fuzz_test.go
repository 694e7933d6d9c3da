package decode

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// fuzzVersion maps a fuzzed byte to a protocol level, invalid ones included (Decode treats them
// as MQTT 5).
func fuzzVersion(b byte) Version { return Version(b % 7) }

// seedFrames returns every frame of the test tables.
func seedFrames() [][]byte {
	var out [][]byte
	for _, c := range wellFormedCases {
		out = append(out, c.b)
	}
	for _, c := range problemCases {
		out = append(out, c.b)
	}
	for _, c := range propertyCases {
		out = append(out, frameIn(c.in, c.b))
	}
	for _, p := range builtPackets() {
		if b, err := Encode(nil, p); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// FuzzDecode: Decode never panics and keeps its invariants; DecodeWith(Options{Lean: true}) differs only by not
// locating fields; a packet without error-level problems re-encodes to the same bytes, and
// those decode to the same packet.
func FuzzDecode(f *testing.F) {
	for _, b := range seedFrames() {
		for _, v := range []Version{V31, V311, V5} {
			f.Add(b, byte(v))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, level byte) {
		v := fuzzVersion(level)
		p := Decode(b, v)
		checkLayout(t, p)
		checkLean(t, b, v, p)
		if !bytes.Equal(p.Info().Raw, b[:min(len(b), len(p.Info().Raw))]) {
			t.Fatalf("Raw is not a prefix of the input")
		}
		enc, encErr := Encode(nil, p)
		if len(errorProblems(p)) > 0 {
			return
		}
		if encErr != nil {
			t.Fatalf("Encode of a packet without errors: %v", encErr)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("Encode(Decode(b)) differs\n got % X\nwant % X\nproblems:%s", enc, b, problemList(p.Info().Problems))
		}
		q := Decode(enc, v)
		if d := samePacket(q, p); d != "" {
			t.Fatalf("Decode(Encode(p)) differs:%s", d)
		}
		if len(q.Info().Problems) != len(p.Info().Problems) {
			t.Fatalf("problems differ:%s\nvs%s", problemList(q.Info().Problems), problemList(p.Info().Problems))
		}
	})
}

// checkLean checks that DecodeWith(b, v, Options{Lean: true}) is p, the packet Decode(b, v) returned, without
// Fields.
func checkLean(t *testing.T, b []byte, v Version, p Packet) {
	t.Helper()
	lean := DecodeWith(b, v, Options{Lean: true})
	if lean.Info().Fields != nil {
		t.Fatalf("a lean decode located %d fields", len(lean.Info().Fields))
	}
	located := reflect.ValueOf(p).Elem()
	want := reflect.New(located.Type())
	want.Elem().Set(located)
	want.Interface().(Packet).Info().Fields = nil
	if !reflect.DeepEqual(lean, want.Interface()) {
		t.Fatalf("a lean decode differs from Decode beyond Fields:\n%+v\n%+v", lean, want.Interface())
	}
}

// FuzzFramer: a stream split into random pieces frames exactly as SplitFrame does in one go.
func FuzzFramer(f *testing.F) {
	_, stream := tableStream()
	f.Add(stream, []byte{1}, uint16(0))
	f.Add(stream, []byte{3, 7, 1, 250, 2}, uint16(64))
	f.Add(stream, []byte{0}, uint16(20))
	f.Add([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00}, []byte{2}, uint16(0))
	f.Add([]byte{0xC0, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, []byte{1, 1, 5}, uint16(0))
	f.Fuzz(func(t *testing.T, data, splits []byte, max uint16) {
		limit := int(max)
		// One shot.
		var want [][]byte
		var wantErr error
		rest := data
		for {
			n, err := SplitFrame(rest, limit)
			if err != nil {
				wantErr = err
				break
			}
			if n == 0 {
				break
			}
			if n > len(rest) {
				t.Fatalf("SplitFrame returned %d for %d bytes", n, len(rest))
			}
			want = append(want, rest[:n])
			rest = rest[n:]
		}
		// In pieces.
		fr := NewFramer(limit)
		var got [][]byte
		var gotErr error
		off := 0
		for i := 0; off < len(data) && gotErr == nil; i++ {
			n := len(data) - off
			if len(splits) > 0 {
				n = min(n, 1+int(splits[i%len(splits)])) // never an empty piece: it would loop forever
			}
			fr.Write(data[off : off+n])
			off += n
			for {
				frame, err := fr.Next()
				if err != nil {
					gotErr = err
					break
				}
				if frame == nil {
					break
				}
				got = append(got, frame)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames in pieces, %d in one go", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d: % X in pieces, % X in one go", i, got[i], want[i])
			}
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("error in pieces %v, in one go %v", gotErr, wantErr)
		}
		if wantErr != nil {
			var pg, pw *Problem
			if !errors.As(gotErr, &pg) || !errors.As(wantErr, &pw) || pg.Offset != pw.Offset+len(data)-len(rest) ||
				!errors.Is(gotErr, pw.Category) {
				t.Fatalf("error in pieces %v, in one go %v at %d", gotErr, wantErr, len(data)-len(rest))
			}
			return
		}
		if fr.Buffered() != len(rest) || fr.Offset() != int64(len(data)-len(rest)) {
			t.Fatalf("Buffered %d Offset %d; %d bytes left over after %d", fr.Buffered(), fr.Offset(), len(rest), len(data)-len(rest))
		}
	})
}
