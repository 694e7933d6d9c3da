package decode

import (
	"bytes"
	"errors"
	"math/rand"
	"runtime"
	"testing"
)

// tableStream returns every well-formed table frame, and the frames concatenated.
func tableStream() (frames [][]byte, stream []byte) {
	for _, c := range wellFormedCases {
		frames = append(frames, c.b)
		stream = append(stream, c.b...)
	}
	return frames, stream
}

// feed writes the pieces into a Framer and collects every frame it returns.
func feed(t testing.TB, f *Framer, pieces ...[]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range pieces {
		if n, err := f.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		for {
			fr, err := f.Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if fr == nil {
				break
			}
			sameHeader(t, f, fr)
			out = append(out, fr)
		}
	}
	return out
}

// sameHeader checks that the Framer's Header is the fixed header of the frame (or head) it
// just returned.
func sameHeader(t testing.TB, f *Framer, frame []byte) {
	t.Helper()
	if h, ok, err := ParseHeader(frame); !ok || err != nil || f.Header() != h {
		t.Fatalf("Header = %+v for the frame % X (%+v, %v, %v)", f.Header(), frame[:min(len(frame), 8)], h, ok, err)
	}
}

func sameFrames(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: frame %d = % X, want % X", what, i, got[i], want[i])
		}
	}
}

func TestSplitFrameStream(t *testing.T) {
	frames, stream := tableStream()
	var got [][]byte
	for b := stream; len(b) > 0; {
		n, err := SplitFrame(b, 0)
		if err != nil || n == 0 {
			t.Fatalf("SplitFrame = %d, %v at %d", n, err, len(stream)-len(b))
		}
		got = append(got, b[:n])
		b = b[n:]
	}
	sameFrames(t, "SplitFrame", got, frames)
	// Every proper prefix of a frame needs more bytes.
	for _, fr := range frames {
		for i := 0; i < len(fr); i++ {
			if n, err := SplitFrame(fr[:i], 0); n != 0 || err != nil {
				t.Fatalf("SplitFrame(% X) = %d, %v; want need-more", fr[:i], n, err)
			}
		}
	}
}

func TestFramerEverySplit(t *testing.T) {
	frames, stream := tableStream()
	for i := 0; i <= len(stream); i++ {
		f := NewFramer(0)
		got := feed(t, f, stream[:i], stream[i:])
		sameFrames(t, "split", got, frames)
		if f.Buffered() != 0 || f.Offset() != int64(len(stream)) {
			t.Fatalf("split at %d: Buffered %d Offset %d", i, f.Buffered(), f.Offset())
		}
	}
}

func TestFramerByteAtATime(t *testing.T) {
	frames, stream := tableStream()
	var ends []int // ends[k]: stream offset just past frame k
	end := 0
	for _, fr := range frames {
		end += len(fr)
		ends = append(ends, end)
	}
	f := NewFramer(0)
	var got [][]byte
	for i := range stream {
		got = append(got, feed(t, f, stream[i:i+1])...)
		// A frame comes out on the very byte that completes it, not later.
		done := 0
		for done < len(ends) && ends[done] <= i+1 {
			done++
		}
		if len(got) != done {
			t.Fatalf("after byte %d: %d frames returned, %d complete", i, len(got), done)
		}
		if done > 0 && f.Offset() != int64(ends[done-1]) {
			t.Fatalf("after byte %d: Offset %d, want %d", i, f.Offset(), ends[done-1])
		}
	}
	// Frames handed out earlier were not overwritten by later writes.
	sameFrames(t, "one byte at a time", got, frames)
}

func TestFramerRandomPieces(t *testing.T) {
	frames, stream := tableStream()
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		var pieces [][]byte
		for b := stream; len(b) > 0; {
			n := min(len(b), 1+rng.Intn(40))
			pieces = append(pieces, b[:n])
			b = b[n:]
		}
		sameFrames(t, "random pieces", feed(t, NewFramer(0), pieces...), frames)
	}
}

func TestFramerRejectsOversizeAtHeader(t *testing.T) {
	f := NewFramer(64)
	first := []byte{0xC0, 0x00} // PINGREQ
	got := feed(t, f, first)
	if len(got) != 1 {
		t.Fatalf("got %d frames", len(got))
	}
	// A PUBLISH announcing 16383 bytes: rejected once its two-byte Remaining Length is in,
	// before any of the body arrives.
	f.Write([]byte{0x30, 0xFF})
	if fr, err := f.Next(); fr != nil || err != nil {
		t.Fatalf("Next with half a header = %v, %v", fr, err)
	}
	f.Write([]byte{0x7F})
	fr, err := f.Next()
	var p *Problem
	if fr != nil || !errors.Is(err, ErrTooLarge) || !errors.As(err, &p) || p.Reason != PacketTooLarge || p.Offset != 2 {
		t.Fatalf("Next = %v, %v; want packet too large at stream offset 2", fr, err)
	}
	// The error sticks; later bytes are ignored.
	if n, err := f.Write([]byte{0xC0, 0x00}); n != 2 || err != nil {
		t.Fatalf("Write after the error = %d, %v", n, err)
	}
	if _, err2 := f.Next(); err2 != err {
		t.Fatalf("Next after the error = %v", err2)
	}
	// The limit is inclusive.
	if n, err := SplitFrame([]byte{0x30, 0x3E}, 64); n != 0 || err != nil {
		t.Errorf("64-byte frame with max 64: %d, %v", n, err)
	}
	if _, err := SplitFrame([]byte{0x30, 0x3F}, 64); !errors.Is(err, ErrTooLarge) {
		t.Errorf("65-byte frame with max 64: %v", err)
	}
}

// SetMax applies from the next frame: a frame cut before it stays, the next one over the new
// limit is refused at its header, and Max says the limit.
func TestFramerSetMax(t *testing.T) {
	f := NewFramer(0)
	f.Write([]byte{0xC0, 0x00, 0x30, 0x0A}) // PINGREQ, then a PUBLISH header announcing 10 bytes
	if fr, err := f.Next(); len(fr) != 2 || err != nil {
		t.Fatalf("first frame: %v, %v", fr, err)
	}
	f.SetMax(8)
	if f.Max() != 8 {
		t.Fatalf("Max() = %d after SetMax(8)", f.Max())
	}
	if fr, err := f.Next(); fr != nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a 12-byte frame with max 8: %v, %v", fr, err)
	}
}

func TestFramerMalformedHeader(t *testing.T) {
	f := NewFramer(0)
	feed(t, f, []byte{0xD0, 0x00}) // PINGRESP
	f.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})
	_, err := f.Next()
	var p *Problem
	if !errors.Is(err, ErrMalformed) || !errors.As(err, &p) || p.Offset != 3 {
		t.Fatalf("Next = %v; want malformed at stream offset 3", err)
	}
}

// TestFramerHugeHeaderCostsNothing: a header announcing the largest Remaining Length allocates
// nothing in proportion to it, with or without a limit.
func TestFramerHugeHeaderCostsNothing(t *testing.T) {
	hdr := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F} // PUBLISH, Remaining Length 268,435,455
	for _, max := range []int{0, 1 << 20} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f := NewFramer(max)
		f.Write(hdr)
		f.Write([]byte{0x00, 0x01, 't'})
		fr, err := f.Next()
		runtime.ReadMemStats(&after)
		if fr != nil || (max == 0) != (err == nil) {
			t.Fatalf("max %d: Next = %v, %v", max, fr, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 { // a few KiB of noise; the frame is 256 MiB
			t.Errorf("max %d: the header cost %d bytes", max, d)
		}
		if max == 0 && f.Buffered() != len(hdr)+3 {
			t.Errorf("Buffered = %d", f.Buffered())
		}
	}
	p := Decode(hdr, V5) // a frame that claims far more than it has: decoded as far as it goes
	if len(errorProblems(p)) == 0 {
		t.Errorf("no problem for a truncated frame")
	}
	if raceEnabled {
		return // the race detector allocates on its own
	}
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := SplitFrame(hdr, 0); n != 0 || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("SplitFrame of a huge header: %v allocations", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := SplitFrame(hdr, 1<<20); err == nil {
			t.Fatal("no error")
		}
	})
	if allocs > 4 { // the *Problem and its message only
		t.Errorf("SplitFrame rejecting a huge header: %v allocations", allocs)
	}
}

// TestFramerLargeFrameLinear: a 1 MiB frame in 1,448-byte pieces costs a few times its size in
// allocations, not one copy of what is held per piece (360 MB when the buffer grew by exactly
// each piece).
func TestFramerLargeFrameLinear(t *testing.T) {
	frame, err := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "big", Payload: make([]byte, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f := NewFramer(0)
	var got []byte
	for b := frame; len(b) > 0; {
		n := min(len(b), 1448)
		f.Write(b[:n])
		b = b[n:]
		fr, err := f.Next()
		if err != nil {
			t.Fatal(err)
		}
		if fr != nil {
			got = fr
		}
	}
	runtime.ReadMemStats(&after)
	if !bytes.Equal(got, frame) {
		t.Fatalf("got %d bytes, want the %d-byte frame", len(got), len(frame))
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 3*uint64(len(frame)) {
		t.Errorf("assembling a %d-byte frame allocated %d bytes", len(frame), d)
	}
}

func TestFramerKeep(t *testing.T) {
	pub, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "a/b", Payload: make([]byte, 300)}) // header 3 bytes
	ping := []byte{0xC0, 0x00}
	stream := append(append(append([]byte{}, ping...), pub...), ping...)
	for _, tc := range []struct {
		name   string
		keep   int
		pieces []int
	}{
		{"headers, whole", 0, []int{len(stream)}},
		{"headers, byte by byte", 0, []int{1}},
		{"8 bytes, pieces of 3", 8, []int{3}},
		{"8 bytes, pieces of 200", 8, []int{200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFramer(0)
			f.Keep(tc.keep)
			var got [][]byte
			held := 0
			for i, off := 0, 0; off < len(stream); i++ {
				n := min(len(stream)-off, tc.pieces[i%len(tc.pieces)])
				f.Write(stream[off : off+n])
				off += n
				for {
					fr, err := f.Next()
					if err != nil {
						t.Fatal(err)
					}
					if fr == nil {
						break
					}
					got = append(got, bytes.Clone(fr))
				}
				held = max(held, len(f.buf))
			}
			want := [][]byte{ping, pub[:3+tc.keep], ping}
			sameFrames(t, tc.name, got, want)
			if !f.AtBoundary() || f.Offset() != int64(len(stream)) {
				t.Errorf("AtBoundary %v Offset %d, want true %d", f.AtBoundary(), f.Offset(), len(stream))
			}
			if held > 5+tc.keep {
				t.Errorf("held up to %d bytes; a head is at most %d", held, 5+tc.keep)
			}
		})
	}
}

func TestFramerSkip(t *testing.T) {
	big, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "t", Payload: make([]byte, 100)})
	ping := []byte{0xC0, 0x00}
	for _, keep := range []int{-1, 0} {
		f := NewFramer(64)
		if keep >= 0 {
			f.Keep(keep)
		}
		f.Write(big[:10])
		if _, err := f.Next(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("keep %d: Next = %v, want too large", keep, err)
		}
		if f.Resynced() != 0 || !f.Skip() || f.Skip() {
			t.Fatalf("keep %d: Skip did not skip once", keep)
		}
		// The rest of the big frame, in two pieces, then a PINGREQ.
		got := feed(t, f, big[10:50], append(append([]byte{}, big[50:]...), ping...))
		sameFrames(t, "after Skip", got, [][]byte{ping})
		if f.Offset() != int64(len(big)+2) {
			t.Errorf("keep %d: Offset %d", keep, f.Offset())
		}
	}
	// Skip refuses other errors.
	f := NewFramer(0)
	f.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x80})
	if _, err := f.Next(); !errors.Is(err, ErrMalformed) || f.Skip() {
		t.Fatalf("Skip after %v", err)
	}
}

func TestFramerResync(t *testing.T) {
	ping := []byte{0xC0, 0x00}
	puback := []byte{0x40, 0x02, 0x00, 0x07}
	bad := []byte{0x30, 0x80, 0x80, 0x80, 0x80} // a Remaining Length of five bytes
	// Junk a resync must pass over: a PUBACK header with the wrong flags and a PINGREQ
	// announcing a body.
	junk := []byte{0x41, 0x02, 0x00, 0x07, 0xC0, 0x01, 0x00}
	stream := append(append(append(append([]byte{}, ping...), bad...), junk...), puback...)
	for _, piece := range []int{len(stream), 1, 3} {
		f := NewFramer(0)
		var got [][]byte
		errs := 0
		for off := 0; off < len(stream); off += piece {
			f.Write(stream[off:min(off+piece, len(stream))])
			for {
				fr, err := f.Next()
				if err != nil {
					errs++
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("Next = %v", err)
					}
					f.Resync(firstClean{})
					continue
				}
				if fr == nil {
					break
				}
				got = append(got, fr)
				if bytes.Equal(fr, puback) && f.Resynced() != len(bad)-1+len(junk) {
					t.Errorf("pieces of %d: Resynced %d, want %d", piece, f.Resynced(), len(bad)-1+len(junk))
				}
			}
		}
		sameFrames(t, "resync", got, [][]byte{ping, puback})
		if errs != 1 || f.Resyncing() || f.Offset() != int64(len(stream)) {
			t.Errorf("pieces of %d: %d errors, Resyncing %v, Offset %d", piece, errs, f.Resyncing(), f.Offset())
		}
	}
}

func TestFramerGap(t *testing.T) {
	pub, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "t", Payload: make([]byte, 100)})
	puback := []byte{0x40, 0x02, 0x00, 0x07}
	// Lost bytes inside a frame being skipped cost nothing.
	f := NewFramer(64)
	f.Write(pub[:20])
	f.Next()
	f.Skip()
	if n := f.Gap(50); n != 0 {
		t.Fatalf("Gap inside a skipped frame = %d", n)
	}
	// The skipped frame had len(pub)-70 bytes to go: the other 70 lost bytes were past it.
	if n := f.Gap(len(pub)); n != 70 {
		t.Fatalf("Gap past the skipped frame = %d, want 70", n)
	}
	// Otherwise the partial frame held goes, and a resync finds the next frame.
	f = NewFramer(0)
	f.Write(pub[:30])
	if n := f.Gap(10); n != 10 || f.Buffered() != 0 {
		t.Fatalf("Gap = %d with %d bytes held", n, f.Buffered())
	}
	f.Resync(firstClean{})
	got := feed(t, f, pub[40:], puback)
	sameFrames(t, "after a gap", got, [][]byte{puback})
	if f.Resynced() != len(pub)-40 || f.Offset() != int64(len(pub)+len(puback)) {
		t.Errorf("Resynced %d Offset %d", f.Resynced(), f.Offset())
	}
}

// TestFramerKeepUndrained: with Keep, a Write before Next returned nil keeps the order of the
// bytes; a malformed header stays an error, since a Framer that does not hold frames cannot
// resynchronise.
func TestFramerKeepUndrained(t *testing.T) {
	pub, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "t", Payload: make([]byte, 40)})
	f := NewFramer(0)
	f.Keep(0)
	w := append(append([]byte{0xC0, 0x00}, pub...), 0xD0, 0x00)
	f.Write(w)
	if fr, err := f.Next(); err != nil || !bytes.Equal(fr, []byte{0xC0, 0x00}) {
		t.Fatalf("Next = % X, %v", fr, err)
	}
	if fr, err := f.Next(); err != nil || !bytes.Equal(fr, pub[:2]) {
		t.Fatalf("Next = % X, %v", fr, err)
	}
	got := feed(t, f, []byte{0xE0, 0x00})
	sameFrames(t, "after an undrained Write", got, [][]byte{{0xD0, 0x00}, {0xE0, 0x00}})

	f.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})
	_, err := f.Next()
	f.Resync(firstClean{})
	if _, err2 := f.Next(); !errors.Is(err, ErrMalformed) || err2 != err || f.Skip() {
		t.Fatalf("Next = %v, after Resync %v", err, err2)
	}
}

// firstClean is the Resyncer of the tests: framing resumes at the first offset where a header
// with the flags its type must have begins a whole frame of at most 1 MiB that decodes as
// MQTT 5 without problems, waiting at an offset whose header or frame is not whole yet (unless
// no more bytes will come).
type firstClean struct{}

func (firstClean) Resync(b []byte, _, ended bool) (int, bool) {
	for i := range b {
		h, whole, err := ParseHeader(b[i:])
		flags := byte(0)
		switch Type(b[i] >> 4) {
		case PUBLISH:
			flags = b[i] & 15 // any but QoS 3
		case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
			flags = 2
		}
		if err != nil || b[i]>>4 == 0 || b[i]&15 != flags || b[i]&6 == 6 && Type(b[i]>>4) == PUBLISH {
			continue
		}
		size := h.HeaderLen + h.RemainingLength
		switch {
		case !whole || len(b)-i < size && size <= 1<<20:
			if !ended {
				return i, false
			}
		case size > 1<<20:
		case len(DecodeWith(b[i:i+size:i+size], V5, Options{Lean: true}).Info().Problems) == 0:
			return i, true
		}
	}
	return len(b), false
}

// TestFramerWriteSkipped: WriteSkipped takes only bytes inside a frame being dropped, and leaves
// the Framer where Write would have.
func TestFramerWriteSkipped(t *testing.T) {
	pub, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "a/b", Payload: make([]byte, 300)}) // header 3 bytes
	ping := []byte{0xC0, 0x00}
	stream := append(append([]byte{}, pub...), ping...)

	f := NewFramer(0)
	f.Keep(0)
	if f.WriteSkipped(stream[:1]) {
		t.Fatal("WriteSkipped took the first byte of a header")
	}
	sameFrames(t, "the header", feed(t, f, stream[:3]), [][]byte{pub[:3]})
	if !f.WriteSkipped(stream[3:100]) || f.Offset() != 100 || f.AtBoundary() {
		t.Fatalf("inside the body: Offset %d AtBoundary %v", f.Offset(), f.AtBoundary())
	}
	if f.WriteSkipped(stream[100 : len(pub)+1]) {
		t.Fatal("WriteSkipped took the first byte of the next frame")
	}
	if !f.WriteSkipped(stream[100:len(pub)]) || f.Offset() != int64(len(pub)) || !f.AtBoundary() {
		t.Fatalf("to the end of the body: Offset %d AtBoundary %v", f.Offset(), f.AtBoundary())
	}
	sameFrames(t, "the next frame", feed(t, f, ping), [][]byte{ping})

	// Bytes of the last Write that Next did not read yet come first: nothing is skipped past them.
	f = NewFramer(0)
	f.Keep(0)
	f.Write(stream[:10])
	if fr, err := f.Next(); err != nil || !bytes.Equal(fr, pub[:3]) {
		t.Fatalf("Next = % X, %v", fr, err)
	}
	if f.WriteSkipped(stream[10:20]) {
		t.Fatal("WriteSkipped took bytes before Next read the last Write")
	}

	// Without Keep, the rest of a frame over the limit is skipped.
	f = NewFramer(100)
	f.Write(stream[:50])
	if _, err := f.Next(); !errors.Is(err, ErrTooLarge) || !f.Skip() {
		t.Fatalf("Next = %v", err)
	}
	if !f.WriteSkipped(stream[50:len(pub)]) || f.Offset() != int64(len(pub)) {
		t.Fatalf("the rest of a frame too large: Offset %d", f.Offset())
	}
	sameFrames(t, "after a frame too large", feed(t, f, ping), [][]byte{ping})
}
