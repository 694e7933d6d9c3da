package proxy

import "github.com/mqscope/mqscope/decode"

// tracker follows MQTT frame boundaries in one direction of a stream without holding any frame:
// a decode.Framer keeping fixed headers only (at most five bytes). It tells the pipe where
// frames start, so that injected packets go between frames, and counts frames by type for the
// metrics. A malformed header ends tracking for the rest of the stream (the bytes are still
// forwarded).
type tracker struct {
	fr     decode.Framer // with Keep(0)
	typ    byte          // the current frame's type
	start  int64         // stream offset of the current frame
	end    int64         // stream offset just past the current frame
	seen   int64         // stream offset up to which the current frame's bytes were counted
	frames int           // frames seen whole
	broken bool
	// head keeps the first bytes of the stream, to read the CONNECT's protocol level.
	head  [16]byte
	headN int
}

func newTracker() tracker {
	var t tracker
	t.fr.Keep(0)
	return t
}

// frameFn is called with the bytes of frames as they are seen: start is true once per frame,
// when its fixed header is complete (n is then the header's length), and false for each piece
// of its body. A frame's declared size is never counted, only the bytes that came: a stream of
// garbage declaring a 256 MB frame counts the few bytes it sent.
type frameFn func(typ byte, start bool, n int)

// feed follows b through the frame structure.
func (t *tracker) feed(b []byte, fn frameFn) {
	if t.headN < len(t.head) {
		t.headN += copy(t.head[t.headN:], b)
	}
	if t.broken {
		return
	}
	if t.fr.WriteSkipped(b) { // all of b is inside the current frame's body
		t.body(t.fr.Offset(), fn)
		return
	}
	t.fr.Write(b)
	for t.fr.Buffered() > 0 { // with no bytes left, Next has nothing to return
		hdr, err := t.fr.Next()
		if err != nil {
			t.body(t.fr.Offset(), fn)
			t.broken = true
			t.fr.Reset() // hold nothing from now on
			return
		}
		if hdr == nil {
			break
		}
		start := t.fr.Offset() - int64(len(hdr))
		t.body(start, fn) // the rest of the frame before
		h := t.fr.Header()
		t.typ = byte(h.Type)
		t.start = start
		t.seen = t.fr.Offset()
		t.end = t.start + int64(h.HeaderLen+h.RemainingLength)
		if fn != nil {
			fn(t.typ, true, len(hdr))
		}
		if t.seen == t.end {
			t.frames++
		}
	}
	t.body(t.fr.Offset(), fn)
}

// body counts the bytes of the current frame's body that the Framer went past, up to stream
// offset upto.
func (t *tracker) body(upto int64, fn frameFn) {
	upto = min(upto, t.end)
	if upto <= t.seen {
		return
	}
	if fn != nil {
		fn(t.typ, false, int(upto-t.seen))
	}
	t.seen = upto
	if t.seen == t.end {
		t.frames++
	}
}

// partial returns how many bytes of an unfinished frame have been seen (0 between frames).
func (t *tracker) partial() int {
	switch {
	case t.broken:
		return 0
	case t.seen < t.end:
		return int(t.seen - t.start)
	}
	return t.fr.Buffered() // the part of a fixed header
}

// boundary reports whether the bytes seen so far end exactly at the end of a frame.
func (t *tracker) boundary() bool { return !t.broken && t.fr.AtBoundary() }

// headBytes returns the first bytes of the stream (at most 16).
func (t *tracker) headBytes() []byte { return t.head[:t.headN] }
