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
	// Decoded into packets given back (Options.Reuse), still holding what other frames put
	// in them, it is the same packet.
	var u Reuse
	for _, d := range dirtyPackets(t) {
		u.Put(d)
	}
	if reused := DecodeWith(b, v, Options{Lean: true, Reuse: &u}); !reflect.DeepEqual(reused, lean) {
		t.Fatalf("decoded into a packet given back, it differs:\n%+v\n%+v", reused, lean)
	}
}

// dirtyPackets are a PUBLISH and an acknowledgement with most of their fields set, and a
// PUBLISH with a problem, to be given back (Reuse.Put) before a decode.
func dirtyPackets(t *testing.T) []Packet {
	t.Helper()
	v5 := Base{Version: V5}
	pub := &Publish{Base: v5, QoS: 1, Dup: true, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte("text"),
		Properties: Properties{{ID: PropContentType, Str: "text/plain"}, {ID: PropUserProperty, Str: "k", Value: "v"}, {ID: PropMessageExpiry, Int: 9}}}
	ack := &Ack{Base: v5, PacketType: PUBREC, PacketID: 9, ReasonCode: 0x97, HasReason: true, HasProperties: true,
		Properties: Properties{{ID: PropReasonString, Str: "quota"}}}
	var out []Packet
	for _, p := range []Packet{pub, ack} {
		b, err := Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, DecodeWith(b, V5, Options{Lean: true}))
	}
	// A PUBLISH at QoS 3 decodes with a problem.
	bad := DecodeWith([]byte{0x36, 0x06, 0x00, 0x01, 0x74, 0x00, 0x01, 0x00}, V5, Options{Lean: true})
	if len(bad.Info().Problems) == 0 || len(out[0].Info().Problems) != 0 {
		t.Fatalf("dirty packets: problems %v, %v", bad.Info().Problems, out[0].Info().Problems)
	}
	return append(out, bad)
}

// FuzzFramer holds every way of using the Framer against SplitFrame applied to the whole
// stream at once: fed whole, byte by byte and in random pieces; with Keep (heads only); and
// recovering from errors (Skip past a frame too large, Resync after a malformed header).
func FuzzFramer(f *testing.F) {
	_, stream := tableStream()
	f.Add(stream, []byte{1}, uint16(0), uint8(0))
	f.Add(stream, []byte{3, 7, 1, 250, 2}, uint16(64), uint8(3))
	f.Add(stream, []byte{0}, uint16(20), uint8(255))
	f.Add([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00}, []byte{2}, uint16(0), uint8(1))
	f.Add([]byte{0xC0, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, []byte{1, 1, 5}, uint16(0), uint8(0))
	junk := append(append([]byte{0xC0, 0x00, 0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0x02}, stream...), 0xD0)
	f.Add(junk, []byte{4, 0, 9}, uint16(30), uint8(2))
	f.Fuzz(func(t *testing.T, data, splits []byte, max uint16, keep uint8) {
		limit := int(max)
		want, wantErr, used := splitAll(t, data, limit)
		plans := map[string][]int{"whole": {len(data)}, "byte by byte": {1}}
		if len(splits) > 0 {
			var sizes []int
			for _, s := range splits {
				sizes = append(sizes, 1+int(s)) // never an empty piece
			}
			plans["pieces"] = sizes
		}
		for name, plan := range plans {
			// Whole frames, stopping at the first error.
			fr := NewFramer(limit)
			got, gotErr := framePieces(t, fr, data, plan, nil)
			sameFramesErr(t, name, got, gotErr, want, wantErr, used)
			if wantErr == nil && (fr.Buffered() != len(data)-used || fr.Offset() != int64(used)) {
				t.Fatalf("%s: Buffered %d Offset %d; %d bytes left over after %d", name, fr.Buffered(), fr.Offset(), len(data)-used, used)
			}
			// Lent bytes: the same frames, those whole in a piece in place.
			fl := NewFramer(limit)
			got, gotErr = framePiecesLent(t, fl, data, plan, nil, true)
			sameFramesErr(t, name+", lent", got, gotErr, want, wantErr, used)
			if wantErr == nil && (fl.Buffered() != len(data)-used || fl.Offset() != int64(used)) {
				t.Fatalf("%s, lent: Buffered %d Offset %d; %d bytes left over after %d", name, fl.Buffered(), fl.Offset(), len(data)-used, used)
			}
			// Heads only: each frame's first bytes, and the head of a last frame cut short.
			if keep < 200 {
				k := int(keep)
				fk := NewFramer(limit)
				fk.Keep(k)
				got, gotErr = framePieces(t, fk, data, plan, nil)
				var heads [][]byte
				for _, w := range want {
					heads = append(heads, w[:headSize(w, k)])
				}
				cut := false
				if wantErr == nil {
					if h, ok, err := ParseHeader(data[used:]); ok && err == nil && len(data)-used >= min(h.HeaderLen+h.RemainingLength, h.HeaderLen+k) {
						heads = append(heads, data[used:used+headSize(data[used:], k)])
						cut = true
					}
				}
				sameFramesErr(t, name+", Keep", got, gotErr, heads, wantErr, used)
				if wantErr == nil && !cut && (fk.Buffered() != len(data)-used || fk.Offset() != int64(used) || !fk.AtBoundary() != (used < len(data))) {
					t.Fatalf("%s, Keep: Buffered %d Offset %d; %d bytes left over after %d", name, fk.Buffered(), fk.Offset(), len(data)-used, used)
				}
				if cut && (fk.Buffered() != 0 || fk.Offset() != int64(len(data)) || fk.AtBoundary()) {
					t.Fatalf("%s, Keep: after the head of a cut frame: Buffered %d Offset %d", name, fk.Buffered(), fk.Offset())
				}
			}
			// Recovering from errors: every frame is the one SplitFrame finds at its offset.
			rec := NewFramer(limit)
			var offs []int64
			got, _ = framePiecesLent(t, rec, data, plan, func(frame []byte) {
				offs = append(offs, rec.Offset()-int64(len(frame)))
			}, len(splits)%2 == 1)
			for i, frame := range got {
				o := int(offs[i])
				if n, err := SplitFrame(data[o:], limit); n != len(frame) || err != nil || !bytes.Equal(frame, data[o:o+n]) {
					t.Fatalf("%s, recovering: frame %d at %d is not what SplitFrame finds there (%d, %v)", name, i, o, n, err)
				}
			}
			// Before the first error, recovery changes nothing.
			if len(got) < len(want) {
				t.Fatalf("%s, recovering: %d frames, %d before the first error", name, len(got), len(want))
			}
			sameFramesErr(t, name+", recovering", got[:len(want)], nil, want, nil, used)
			if name == "whole" {
				// Fed at once, the search for a boundary is the plain one.
				ref := recoverAll(data, limit)
				if len(ref) != len(got) {
					t.Fatalf("recovering: %d frames fed whole, %d by the plain search", len(got), len(ref))
				}
				for i := range ref {
					if int64(ref[i]) != offs[i] {
						t.Fatalf("recovering: frame %d at %d fed whole, at %d by the plain search", i, offs[i], ref[i])
					}
				}
			}
		}
	})
}

// splitAll cuts data with SplitFrame alone: the frames, the error that stopped it, and how
// many bytes the frames take.
func splitAll(t *testing.T, data []byte, limit int) (frames [][]byte, err error, used int) {
	rest := data
	for {
		n, err := SplitFrame(rest, limit)
		if err != nil || n == 0 {
			return frames, err, len(data) - len(rest)
		}
		if n > len(rest) {
			t.Fatalf("SplitFrame returned %d for %d bytes", n, len(rest))
		}
		frames = append(frames, rest[:n])
		rest = rest[n:]
	}
}

// headSize is how many bytes of frame b a Framer with Keep(k) returns.
func headSize(b []byte, k int) int {
	h, _, _ := ParseHeader(b)
	return min(h.HeaderLen+h.RemainingLength, h.HeaderLen+k)
}

// framePieces writes data into fr in pieces of the sizes in plan (cycled) and collects the
// frames, checking that Header tells each one's fixed header. With got nil it stops at the
// first error; else it calls got with each frame, right after Next, and recovers from every
// error (Skip, or Resync with firstClean). Every other piece is offered to WriteSkipped first:
// it must leave the Framer as Write does.
func framePieces(t testing.TB, fr *Framer, data []byte, plan []int, got func([]byte)) ([][]byte, error) {
	return framePiecesLent(t, fr, data, plan, got, false)
}

// framePiecesLent is framePieces that, with lend, writes each piece with WriteLent from a
// scratch copy, which it overwrites once Next has returned nil: a frame the Framer says is
// not lent must not change then, and one it says is lent must be a slice of the piece.
func framePiecesLent(t testing.TB, fr *Framer, data []byte, plan []int, got func([]byte), lend bool) ([][]byte, error) {
	t.Helper()
	var out [][]byte
	var scratch []byte
	for i, off := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, plan[i%len(plan)])
		piece := data[off : off+n]
		switch {
		case lend && i%3 == 2:
			fr.Write(piece) // Write after WriteLent keeps the order
		case lend:
			scratch = append(scratch[:0], piece...)
			piece = scratch
			fr.WriteLent(piece)
		case i%2 == 0 || !fr.WriteSkipped(piece):
			fr.Write(piece)
		}
		off += n
		for {
			frame, err := fr.Next()
			if err != nil {
				if got == nil {
					return out, err
				}
				if !fr.Skip() {
					fr.Resync(firstClean{})
				}
				continue
			}
			if frame == nil {
				break
			}
			sameHeader(t, fr, frame)
			switch {
			case fr.Lent() && (!lend || !within(frame, piece)):
				t.Fatalf("a lent frame not in the bytes of WriteLent")
			case lend && !fr.Lent():
				out = append(out, frame) // the Framer's own bytes: they must not change
			default:
				out = append(out, bytes.Clone(frame)) // with Keep, valid until the next Write only
			}
			if got != nil {
				got(frame)
			}
		}
		if lend {
			for k := range scratch {
				scratch[k] = 0xEE
			}
		}
	}
	return out, nil
}

// within reports whether frame is a slice of piece.
func within(frame, piece []byte) bool {
	for k := 0; k+len(frame) <= len(piece); k++ {
		if &piece[k] == &frame[0] {
			return true
		}
	}
	return false
}

func sameFramesErr(t *testing.T, what string, got [][]byte, gotErr error, want [][]byte, wantErr error, used int) {
	t.Helper()
	sameFrames(t, what, got, want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s: error %v, %v by SplitFrame", what, gotErr, wantErr)
	}
	if wantErr != nil {
		var pg, pw *Problem
		if !errors.As(gotErr, &pg) || !errors.As(wantErr, &pw) || pg.Offset != pw.Offset+used || !errors.Is(gotErr, pw.Category) {
			t.Fatalf("%s: error %v, %v by SplitFrame at %d", what, gotErr, wantErr, used)
		}
	}
}

// recoverAll frames data fed at once, recovering from errors as framePieces does, with
// firstClean looking at all the bytes after the error at once: it returns the offset of each
// frame.
func recoverAll(data []byte, limit int) []int {
	var offs []int
	pos, resync := 0, false
	for pos < len(data) {
		if resync {
			off, ok := firstClean{}.Resync(data[pos:], true, false)
			if !ok {
				return offs
			}
			pos, resync = pos+off, false
		}
		n, err := SplitFrame(data[pos:], limit)
		switch {
		case errors.Is(err, ErrTooLarge):
			h, _, _ := ParseHeader(data[pos:])
			pos += h.HeaderLen + h.RemainingLength
		case err != nil:
			pos++
			resync = true
		case n == 0:
			return offs
		default:
			offs = append(offs, pos)
			pos += n
		}
	}
	return offs
}
