package proxy

// tracker follows MQTT frame boundaries in one direction of a stream without holding any frame:
// it reads each fixed header (at most five bytes) and then skips the Remaining Length. It tells
// the pipe where frames start, so that injected packets go between frames, and counts frames by
// type for the metrics. A malformed header ends tracking for the rest of the stream (the bytes
// are still forwarded).
type tracker struct {
	hdr    [5]byte
	hn     int // header bytes held
	left   int // body bytes of the current frame still to come
	size   int // the current frame's whole size, once its header is complete
	frames int // frames seen whole
	broken bool
	// head keeps the first bytes of the stream, to read the CONNECT's protocol level.
	head  [16]byte
	headN int
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
	for len(b) > 0 && !t.broken {
		if t.left > 0 {
			k := min(t.left, len(b))
			t.left -= k
			b = b[k:]
			if fn != nil {
				fn(t.hdr[0]>>4, false, k)
			}
			if t.left == 0 {
				t.frames++
			}
			continue
		}
		t.hdr[t.hn] = b[0]
		t.hn++
		b = b[1:]
		if t.hn < 2 || t.hdr[t.hn-1]&0x80 != 0 {
			if t.hn == len(t.hdr) {
				t.broken = true // a Variable Byte Integer longer than four bytes
			}
			continue
		}
		rl, mul := 0, 1
		for _, c := range t.hdr[1:t.hn] {
			rl += int(c&0x7f) * mul
			mul <<= 7
		}
		if fn != nil {
			fn(t.hdr[0]>>4, true, t.hn)
		}
		t.left, t.size = rl, t.hn+rl
		t.hn = 0
		if rl == 0 {
			t.frames++
		}
	}
}

// partial returns how many bytes of an unfinished frame have been seen (0 between frames).
func (t *tracker) partial() int {
	if t.broken {
		return 0
	}
	if t.left > 0 {
		return t.size - t.left
	}
	return t.hn
}

// boundary reports whether the bytes seen so far end exactly at the end of a frame.
func (t *tracker) boundary() bool { return !t.broken && t.hn == 0 && t.left == 0 }

// headBytes returns the first bytes of the stream (at most 16).
func (t *tracker) headBytes() []byte { return t.head[:t.headN] }
