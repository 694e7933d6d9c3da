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
			out = append(out, fr)
		}
	}
	return out
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
