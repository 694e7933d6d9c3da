package decode

import "fmt"

// SplitFrame reports the length of the first MQTT frame in b. It returns n > 0 when b[:n] is a
// whole frame, n == 0 with a nil error when more bytes are needed, and an error when the fixed
// header is malformed or announces a frame larger than max bytes (max <= 0: no limit but the
// protocol's). A frame that is too large is rejected as soon as its header is read.
func SplitFrame(b []byte, max int) (n int, err error) {
	_, n, err = splitFrame(b, max)
	return n, err
}

// splitFrame is SplitFrame, also returning the frame's fixed header (when n > 0).
func splitFrame(b []byte, max int) (h FixedHeader, n int, err error) {
	h, ok, err := ParseHeader(b)
	if err != nil || !ok {
		return h, 0, err
	}
	size := h.HeaderLen + h.RemainingLength
	if max > 0 && size > max {
		return h, 0, tooLarge(h, size, max)
	}
	if len(b) < size {
		return h, 0, nil
	}
	return h, size, nil
}

// Framer cuts a byte stream that arrives in arbitrary pieces into MQTT frames. It is the one
// framer of mqscope: inspection, the proxy's tracking of frame boundaries and its fault stages
// all use it.
//
// It holds only the bytes it was given: a header announcing a large frame costs nothing until
// the bytes come. A frame arriving in small pieces is assembled in a buffer that grows
// geometrically up to the size its header announces, so the cost is linear in its size. Frames returned by
// Next stay valid after later calls: the Framer never writes over them (with Keep: until the
// next Write; those of bytes lent to WriteLent: as long as the caller keeps those bytes).
//
// When the stream cannot be framed, Next returns the error until the caller decides what
// follows: Skip drops a frame larger than the limit, Resync looks for the next plausible frame
// boundary past a malformed header, and after lost bytes (Gap).
//
// The zero value frames whole frames with no limit but the protocol's.
type Framer struct {
	max     int
	bounded bool // Keep was called: frames are cut after keep bytes beyond their header
	keep    int
	buf     []byte
	start   int   // first byte of buf not yet returned or dropped
	off     int64 // stream offset of the first byte not yet returned, dropped or skipped
	skip    int   // bytes of the current frame still to drop as they come
	err     error
	in      []byte      // with Keep, or after WriteLent: the part of the last Write not read yet, not copied
	hdr     FixedHeader // the fixed header of the frame Next last returned
	lent    bool        // the frame Next last returned is a slice of WriteLent's bytes

	// Resynchronisation: who decides where framing resumes, while looking for a boundary (nil
	// otherwise), the bytes dropped so far, and the bytes dropped before the frame Next last
	// returned; ended: no more bytes will come (End).
	judge    Resyncer
	dropped  int
	resynced int
	ended    bool
}

// NewFramer returns a Framer that rejects frames larger than max bytes (max <= 0: no limit but
// the protocol's 268,435,460 bytes).
func NewFramer(max int) *Framer { return &Framer{max: max} }

// SetMax changes the limit NewFramer set: it applies from the next frame Next cuts (a frame
// already returned or being skipped is not judged again). A client sets it once it knows its
// own Maximum Packet Size.
func (f *Framer) SetMax(max int) { f.max = max }

// Max returns the largest frame Next returns (0: no limit but the protocol's).
func (f *Framer) Max() int { return f.max }

// Keep makes Next return only the fixed header and the first n bytes after it of each frame,
// as soon as those have arrived, and drop the rest of the frame as it comes without holding
// it: what is held is then at most a header and n bytes. Keep(0) follows frame boundaries
// alone. The Framer then reads the bytes of a Write in place, until Next returns nil or an
// error (keep them unchanged until then), and frames returned are valid until the next Write.
// Call Keep before the first Write.
func (f *Framer) Keep(n int) { f.bounded, f.keep = true, max(n, 0) }

// bufChunk is the least a buffer holds, so that the small pieces of a busy stream share one
// allocation. A frame kept longer (a message in flight) keeps its chunk.
const bufChunk = 1024

// Write adds bytes from the stream. It never fails; errors come from Next. While Next reports
// an error, bytes written are dropped: call Skip or Resync first.
func (f *Framer) Write(p []byte) (int, error) {
	n := len(p)
	if f.err != nil || n == 0 {
		return n, nil
	}
	if f.bounded {
		// The bytes are read in place by Next.
		if len(f.in) > 0 {
			f.hold() // Next was not called until it returned nil
		}
		if f.start == len(f.buf) {
			// Nothing frames returned may still use (they last until this Write): reuse.
			f.buf, f.start = f.buf[:0], 0
		}
		f.in = f.skipIn(p)
		return n, nil
	}
	if len(f.in) > 0 {
		f.hold() // WriteLent's bytes Next did not frame
	}
	// A frame is skipped only when nothing is held.
	f.append(f.skipIn(p))
	return n, nil
}

// WriteLent is Write for bytes the caller keeps unchanged for as long as the frames Next
// returns from them are used: the whole frames among them are returned in place, slices of p
// (Lent then reports true), not copied. The bytes of a frame begun before p, or cut by its
// end, are copied, as Write does, once Next has returned nil: until then keep p unchanged.
// With Keep it is Write.
func (f *Framer) WriteLent(p []byte) {
	if f.bounded {
		f.Write(p)
		return
	}
	if f.err != nil || len(p) == 0 {
		return
	}
	if len(f.in) > 0 {
		f.hold()
	}
	f.in = f.skipIn(p)
}

// Lent reports whether the frame Next last returned is a slice of the bytes of WriteLent.
func (f *Framer) Lent() bool { return f.lent }

// WriteSkipped is Write for bytes that fall wholly inside a frame being dropped (with Keep: the
// rest of the frame whose head Next returned), small enough to be inlined into a caller that
// sees every piece of a stream: it writes p and reports true when Write would only have dropped
// it, Next then having nothing to return; otherwise it does nothing and reports false (call
// Write).
func (f *Framer) WriteSkipped(p []byte) bool {
	if f.skip < len(p) || len(f.in) > 0 {
		return false
	}
	f.skip -= len(p)
	f.off += int64(len(p))
	return true
}

// skipIn drops from p the bytes of a frame being skipped and returns the rest.
func (f *Framer) skipIn(p []byte) []byte {
	if f.skip == 0 {
		return p
	}
	k := min(f.skip, len(p))
	f.skip -= k
	f.off += int64(k)
	return p[k:]
}

// hold copies the unread rest of the last Write (with Keep) into the buffer, since the caller
// may reuse its bytes.
func (f *Framer) hold() {
	f.append(f.skipIn(f.in))
	f.in = nil
}

// append adds p to the buffer without ever writing over bytes handed out as frames: into the
// buffer's spare room (frames end before it, with no room of their own), else into a new
// buffer, a private copy, since the caller may reuse p. A new buffer holds four times what is
// needed, up to the size of the frame being assembled, so a large frame in small pieces is
// copied about a third of a time more per byte and allocates less than 1.5 times its size in
// all (with doubling: twice its size, and that much more memory before the garbage collector
// runs).
func (f *Framer) append(p []byte) {
	if len(p) <= cap(f.buf)-len(f.buf) {
		f.buf = append(f.buf, p...)
		return
	}
	f.grow(p)
}

// grow is append into a new buffer.
func (f *Framer) grow(p []byte) {
	tail := f.buf[f.start:]
	need := len(tail) + len(p)
	chunk := bufChunk
	if f.off == 0 && f.buf == nil {
		// The stream's first bytes (a CONNECT, a CONNACK) get a buffer of their own size: the
		// packet a connection keeps for its whole life then keeps no more than itself.
		chunk = 0
	}
	if f.bounded {
		chunk = 5 + f.keep // a fixed header and what is kept of the frame
	}
	size := max(need, chunk)
	if h, ok, err := ParseHeader(tail); ok && err == nil {
		if whole := h.HeaderLen + h.RemainingLength; whole > need {
			size = max(size, min(4*need, whole))
		}
	}
	f.buf = append(make([]byte, 0, size), tail...)
	f.buf = append(f.buf, p...)
	f.start = 0
}

// Next returns the next whole frame (with Keep: its first bytes), or nil when more bytes are
// needed. After an error Next keeps returning it until Skip or Resync.
func (f *Framer) Next() ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.bounded {
		// The proxy's case, for every frame it forwards: nothing held, and past the rest of the
		// frame before, a whole short fixed header and the head after it in the Write's bytes.
		if f.in = f.skipIn(f.in); f.skip > 0 {
			return nil, nil // the Write's bytes are all inside the frame being dropped
		}
		if h, ok := shortHeader(f.in); ok && f.start == len(f.buf) {
			if want, fits := f.headLen(h); fits && want <= len(f.in) {
				head := f.in[:want:want]
				f.in = f.in[want:]
				f.cut(h, want)
				return head, nil
			}
		}
		return f.nextHead()
	}
	f.lent = false
	if len(f.in) > 0 {
		// WriteLent's bytes: a whole frame at their start, with nothing held before it, is
		// returned in place; anything else is held and framed as Write's bytes are.
		if f.judge == nil && f.start == len(f.buf) {
			if h, n, err := splitFrame(f.in, f.max); err == nil && n > 0 {
				frame := f.in[:n:n]
				if f.in = f.in[n:]; len(f.in) == 0 {
					f.in = nil
				}
				f.hdr, f.resynced, f.lent = h, 0, true
				f.off += int64(n)
				return frame, nil
			}
		}
		f.hold()
	}
	dropped := 0
	if f.judge != nil {
		off, ok := f.judge.Resync(f.buf[f.start:], f.dropped == 0, f.ended)
		f.drop(off)
		f.dropped += off
		if !ok {
			return nil, nil
		}
		f.judge = nil
		dropped, f.dropped = f.dropped, 0
	}
	rest := f.buf[f.start:]
	h, n, err := splitFrame(rest, f.max)
	if err != nil {
		return nil, f.fail(err)
	}
	if n == 0 {
		return nil, nil
	}
	f.hdr = h
	f.drop(n)
	f.resynced = dropped
	return rest[:n:n], nil
}

// nextHead is Next with Keep: the head of a frame comes from the bytes held (a head cut by the
// end of a Write) topped up from the Write's bytes, else straight from those bytes.
func (f *Framer) nextHead() ([]byte, error) {
	if f.skip > 0 {
		if f.in = f.skipIn(f.in); f.skip > 0 {
			return nil, nil
		}
	}
	if f.start == len(f.buf) {
		switch len(f.in) {
		case 0:
			f.in = nil
			return nil, nil
		case 1: // the first byte of a header, never a whole one (a byte at a time: cheaply)
			f.buf = append(f.buf, f.in[0])
			f.in = nil
			return nil, nil
		}
		h, ok, err := ParseHeader(f.in)
		if err != nil {
			return nil, f.fail(err)
		}
		if !ok {
			f.hold()
			return nil, nil
		}
		want, fits := f.headLen(h)
		if !fits {
			return nil, f.tooLarge(h)
		}
		if len(f.in) < want {
			f.hold()
			return nil, nil
		}
		head := f.in[:want:want]
		f.in = f.in[want:]
		f.cut(h, want)
		return head, nil
	}
	// Part of a head is held: add the Write's bytes one at a time until the fixed header is
	// whole, then as many as the head still lacks; never more, so the rest stays in f.in.
	for {
		held := f.buf[f.start:]
		h, ok := shortHeader(held)
		if !ok && len(held) > 1 { // one byte is never a whole header
			var err error
			if h, ok, err = ParseHeader(held); err != nil {
				return nil, f.fail(err)
			}
		}
		k := 1
		if ok {
			want, fits := f.headLen(h)
			if !fits {
				return nil, f.tooLarge(h)
			}
			if len(held) >= want {
				f.start += want
				f.cut(h, want)
				return held[:want:want], nil
			}
			k = want - len(held)
		}
		if len(f.in) == 0 {
			return nil, nil
		}
		if k = min(k, len(f.in)); k == 1 {
			f.buf = append(f.buf, f.in[0])
		} else {
			f.buf = append(f.buf, f.in[:k]...)
		}
		f.in = f.in[k:]
	}
}

// headLen returns how many bytes of the frame with header h Next returns with Keep, and false
// when the frame is larger than the limit.
func (f *Framer) headLen(h FixedHeader) (int, bool) {
	if f.max > 0 && h.HeaderLen+h.RemainingLength > f.max {
		return 0, false
	}
	return h.HeaderLen + min(h.RemainingLength, f.keep), true
}

// cut accounts for a head of n bytes just returned: the rest of its frame is skipped.
func (f *Framer) cut(h FixedHeader, n int) {
	f.hdr = h
	f.off += int64(n)
	f.skip = h.HeaderLen + h.RemainingLength - n
	f.resynced = 0
}

// tooLarge fails on the frame with header h, larger than the limit.
func (f *Framer) tooLarge(h FixedHeader) error {
	return f.fail(tooLarge(h, h.HeaderLen+h.RemainingLength, f.max))
}

// tooLarge is SplitFrame's error for a frame larger than max.
func tooLarge(h FixedHeader, size, max int) *Problem {
	return &Problem{Offset: 0, Field: "fixed_header.remaining_length", Reason: PacketTooLarge, Category: ErrTooLarge,
		Message: fmt.Sprintf("%s frame of %d bytes is larger than the %d-byte maximum", h.Type, size, max)}
}

// fail makes err (from SplitFrame, at the next frame) the Framer's error, located in the stream.
func (f *Framer) fail(err error) error {
	if p, ok := err.(*Problem); ok {
		p.Offset += int(f.off)
	}
	f.hold() // with Keep: the rest of the Write, from the header that failed
	f.err = err
	return err
}

// drop advances past n held bytes.
func (f *Framer) drop(n int) {
	f.start += n
	f.off += int64(n)
}

// Header returns the fixed header of the frame Next last returned (with Keep, of the frame whose
// head it returned), parsed once by the Framer: its Type, Flags and whole size. It is the zero
// FixedHeader before the first frame.
func (f *Framer) Header() FixedHeader { return f.hdr }

// Err returns the error Next reports, nil when the stream is being framed.
func (f *Framer) Err() error { return f.err }

// Skip drops the frame that Next reported as too large (ErrTooLarge): the bytes held now and
// the rest of it as they come. It reports false, doing nothing, after any other error.
func (f *Framer) Skip() bool {
	p, ok := f.err.(*Problem)
	if !ok || p.Category != ErrTooLarge {
		return false
	}
	f.err = nil
	h, _, _ := ParseHeader(f.buf[f.start:])
	size := h.HeaderLen + h.RemainingLength
	k := min(size, len(f.buf)-f.start)
	f.drop(k)
	f.skip = size - k
	return true
}

// Resyncer decides where framing resumes after bytes that could not be framed (a malformed
// header, lost bytes, a capture that began inside a connection): the caller knows what the
// stream should hold (the protocol version, which packets are plausible), the Framer holds
// the bytes.
type Resyncer interface {
	// Resync looks at b, the bytes held from the first not yet dropped, and returns where
	// framing resumes (ok: b[off:] begins with a whole frame), or, while more bytes are
	// needed to tell, how many of b can be dropped for good. first says that no byte was
	// dropped since framing stopped, ended that no more bytes will come.
	Resync(b []byte, first, ended bool) (off int, ok bool)
}

// Resync makes the Framer look for the next frame boundary, where r says (Resynced then says
// how many bytes were dropped before the frame there). After an error, the search starts past
// the header that failed; else at the next byte not yet framed. A Framer with Keep cannot
// look into frames it does not hold: there Resync does nothing, and an error stays.
func (f *Framer) Resync(r Resyncer) {
	if f.bounded {
		return
	}
	if f.err != nil {
		f.err = nil
		f.drop(1)
	}
	f.judge = r
}

// Resume stops looking for a frame boundary: the next frame starts at the next byte not yet
// framed, as the caller judged.
func (f *Framer) Resume() { f.judge = nil }

// End says that no more bytes will come: a search for a boundary then takes what it would
// otherwise wait for more bytes to confirm. Call Next after it.
func (f *Framer) End() { f.ended = true }

// Resyncing reports whether the Framer is looking for a frame boundary.
func (f *Framer) Resyncing() bool { return f.judge != nil }

// Dropped returns how many bytes the search for a boundary dropped so far.
func (f *Framer) Dropped() int { return f.dropped }

// Resynced returns how many bytes were dropped, looking for a boundary, just before the frame
// Next last returned.
func (f *Framer) Resynced() int { return f.resynced }

// Gap says n bytes of the stream were lost. Lost bytes inside a frame being skipped cost
// nothing more; otherwise the bytes held (a frame without its lost middle) are dropped, and
// Gap returns how many lost bytes were not inside a skipped frame: the caller then resumes
// framing with Resync.
func (f *Framer) Gap(n int) int {
	f.off += int64(n)
	if f.skip >= n {
		f.skip -= n
		return 0
	}
	n -= f.skip
	f.skip = 0
	f.off += int64(len(f.buf) - f.start + len(f.in))
	f.buf, f.start, f.in, f.err = nil, 0, nil, nil
	return n
}

// Offset returns the stream offset of the first byte not yet returned in a frame, dropped or
// skipped: the start of the next frame, unless one is being skipped.
func (f *Framer) Offset() int64 { return f.off }

// Advance says that the next n bytes of the stream were framed elsewhere (by a Framer ahead of
// this one, on another goroutine): the Framer, holding nothing, moves its offset past them.
func (f *Framer) Advance(n int) { f.off += int64(n) }

// Buffered returns how many bytes are held that do not yet form a whole frame (with Keep: a
// whole head). While it is 0, Next has no frame to return (only an error already reported).
func (f *Framer) Buffered() int { return len(f.buf) - f.start + len(f.in) }

// Pending returns the bytes held that do not yet form a whole frame: after an error, the bytes
// from the header that failed on. They are valid until the next Write.
func (f *Framer) Pending() []byte {
	f.hold()
	return f.buf[f.start:]
}

// AtBoundary reports whether the bytes written so far end exactly at the end of a frame.
func (f *Framer) AtBoundary() bool {
	return f.err == nil && f.judge == nil && f.skip == 0 && f.Buffered() == 0
}

// Release lets go of the buffer when it holds nothing (a connection gone quiet): the next Write
// starts a new one. Frames returned earlier stay valid.
func (f *Framer) Release() {
	if f.Buffered() == 0 {
		f.buf, f.start, f.in = nil, 0, nil
	}
}

// Reset drops everything held and starts afresh, keeping the limit and Keep.
func (f *Framer) Reset() { *f = Framer{max: f.max, bounded: f.bounded, keep: f.keep} }
