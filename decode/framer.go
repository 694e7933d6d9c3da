package decode

import "fmt"

// SplitFrame reports the length of the first MQTT frame in b. It returns n > 0 when b[:n] is a
// whole frame, n == 0 with a nil error when more bytes are needed, and an error when the fixed
// header is malformed or announces a frame larger than max bytes (max <= 0: no limit but the
// protocol's). A frame that is too large is rejected as soon as its header is read.
func SplitFrame(b []byte, max int) (n int, err error) {
	h, ok, err := ParseHeader(b)
	if err != nil || !ok {
		return 0, err
	}
	size := h.HeaderLen + h.RemainingLength
	if max > 0 && size > max {
		return 0, &Problem{Offset: 0, Field: "fixed_header.remaining_length", Reason: PacketTooLarge, Category: ErrTooLarge,
			Message: fmt.Sprintf("%s frame of %d bytes is larger than the %d-byte maximum", h.Type, size, max)}
	}
	if len(b) < size {
		return 0, nil
	}
	return size, nil
}

// Framer cuts a byte stream that arrives in arbitrary pieces into MQTT frames. It holds only
// the bytes it was given: a header announcing a large frame costs nothing until the bytes come.
// Frames returned by Next stay valid after later calls: the Framer never writes over them.
type Framer struct {
	max   int
	buf   []byte
	start int   // first byte not yet returned as a frame
	pos   int64 // stream offset of buf[0]
	err   error
}

// NewFramer returns a Framer that rejects frames larger than max bytes (max <= 0: no limit but
// the protocol's 268,435,460 bytes).
func NewFramer(max int) *Framer { return &Framer{max: max} }

// Write adds bytes from the stream. It never fails; errors come from Next.
func (f *Framer) Write(p []byte) (int, error) {
	if f.err != nil || len(p) == 0 {
		return len(p), nil
	}
	if f.start == len(f.buf) {
		// Everything was consumed: start afresh so returned frames are never overwritten.
		f.pos += int64(len(f.buf))
		f.buf, f.start = nil, 0
	} else if f.start > 0 {
		// Keep the unconsumed tail in a new array; frames handed out keep the old one.
		tail := f.buf[f.start:]
		f.pos += int64(f.start)
		f.buf = append(make([]byte, 0, len(tail)+len(p)), tail...)
		f.start = 0
	}
	f.buf = append(f.buf, p...)
	return len(p), nil
}

// Next returns the next whole frame, or nil when more bytes are needed. After an error the
// stream cannot be framed further and Next keeps returning that error.
func (f *Framer) Next() ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	n, err := SplitFrame(f.buf[f.start:], f.max)
	if err != nil {
		if p, ok := err.(*Problem); ok {
			p.Offset += int(f.Offset()) // the offset in the stream, not in the frame
		}
		f.err = err
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	frame := f.buf[f.start : f.start+n : f.start+n]
	f.start += n
	return frame, nil
}

// Offset returns the stream offset of the next frame.
func (f *Framer) Offset() int64 { return f.pos + int64(f.start) }

// Buffered returns how many bytes are held that do not yet form a whole frame.
func (f *Framer) Buffered() int { return len(f.buf) - f.start }
