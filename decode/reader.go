package decode

import (
	"encoding/binary"
	"fmt"
)

// reader walks one frame, recording where each field is and every problem found. Once a read
// runs past the end, the reader is broken and every later read fails quietly, so a truncated
// packet yields one problem, not a cascade.
type reader struct {
	b      []byte // the whole frame
	off    int
	end    int // end of the region being read (the frame, or a property block)
	base   *Base
	broken bool
	// propBuf, when it has room, holds the next property block read (see publishBlock).
	propBuf Properties
	// short is set once a read fails because the frame ended: the truncation has been reported.
	short bool
	// locate records where each field is (Base.Fields).
	locate bool
	// topics, when set, shares the topic names of a stream's PUBLISH packets.
	topics *TopicCache
}

// overrun notes that a read failed at the end of region end; when that is the frame's end, the
// frame is too short and the problem just reported says so.
func (r *reader) overrun(end int) {
	if end == len(r.b) {
		r.short = true
	}
}

// problem records a problem at offset off.
func (r *reader) problem(off int, field string, lvl Level, cat error, reason ReasonCode, rule, msg string) {
	r.base.Problems = append(r.base.Problems, &Problem{
		Offset: off, Field: field, Rule: rule, Reason: reason, Level: lvl, Category: cat, Message: msg,
	})
}

// malformed records a Malformed Packet problem at off.
func (r *reader) malformed(off int, field, rule, msg string) {
	r.problem(off, field, LevelError, ErrMalformed, MalformedPacket, rule, msg)
}

// protocol records a Protocol Error problem at off.
func (r *reader) protocol(off int, field string, reason ReasonCode, rule, msg string) {
	r.problem(off, field, LevelError, ErrProtocol, reason, rule, msg)
}

func (r *reader) mark(field string, off, n int) {
	if !r.locate {
		return
	}
	r.base.Fields = append(r.base.Fields, Field{Name: field, Offset: off, Len: n})
}

// need checks that n more bytes are in the region.
func (r *reader) need(n int, field string) bool {
	if r.broken {
		return false
	}
	if r.end-r.off < n {
		r.malformed(r.off, field, "", fmt.Sprintf("%s needs %d bytes, only %d left", field, n, r.end-r.off))
		r.overrun(r.end)
		r.broken = true
		r.off = r.end
		return false
	}
	return true
}

func (r *reader) remaining() int { return r.end - r.off }

func (r *reader) u8(field string) (byte, bool) {
	if !r.need(1, field) {
		return 0, false
	}
	v := r.b[r.off]
	r.mark(field, r.off, 1)
	r.off++
	return v, true
}

func (r *reader) u16(field string) (uint16, bool) {
	if !r.need(2, field) {
		return 0, false
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.mark(field, r.off, 2)
	r.off += 2
	return v, true
}

func (r *reader) u32(field string) (uint32, bool) {
	if !r.need(4, field) {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.mark(field, r.off, 4)
	r.off += 4
	return v, true
}

func (r *reader) vbi(field string) (uint32, bool) {
	if r.broken {
		return 0, false
	}
	v, n, st := readVBI(r.b[r.off:r.end])
	switch st {
	case vbiShort:
		r.malformed(r.off, field, "", field+": the bytes end inside a variable byte integer")
		r.overrun(r.end)
		r.broken, r.off = true, r.end
		return 0, false
	case vbiTooLong:
		r.malformed(r.off, field, "", field+": variable byte integer longer than 4 bytes")
		r.broken, r.off = true, r.end
		return 0, false
	case vbiNotShort:
		r.malformed(r.off, field, "MQTT-1.5.5-1", fmt.Sprintf("%s: variable byte integer %d uses %d bytes, more than the minimum", field, v, n))
	}
	r.mark(field, r.off, n)
	r.off += n
	return v, true
}

// bytes reads a two-byte length and that many bytes.
func (r *reader) bytes(field string) ([]byte, int, bool) {
	if !r.need(2, field) {
		return nil, 0, false
	}
	n := int(binary.BigEndian.Uint16(r.b[r.off:]))
	start := r.off
	if r.end-r.off-2 < n {
		r.malformed(r.off, field, "", fmt.Sprintf("%s: length %d but only %d bytes left", field, n, r.end-r.off-2))
		r.overrun(r.end)
		r.broken, r.off = true, r.end
		return nil, start, false
	}
	r.mark(field, start, 2+n)
	r.off += 2 + n
	return r.b[start+2 : start+2+n : start+2+n], start, true
}

// bin reads Binary Data.
func (r *reader) bin(field string) ([]byte, bool) {
	b, _, ok := r.bytes(field)
	return b, ok
}

// str reads a UTF-8 Encoded String and checks it.
func (r *reader) str(field string) (string, bool) {
	b, start, ok := r.bytes(field)
	if !ok {
		return "", false
	}
	r.checkString(b, start+2, field)
	switch string(b) { // the protocol names, without allocating
	case "MQTT":
		return "MQTT", true
	case "MQIsdp":
		return "MQIsdp", true
	}
	return string(b), true
}

// topic reads a PUBLISH Topic Name: a UTF-8 Encoded String, taken from r.topics when it holds
// the same bytes (checked already: only names without problems are kept there).
func (r *reader) topic() (string, bool) {
	if r.topics == nil {
		return r.str("topic")
	}
	b, start, ok := r.bytes("topic")
	if !ok {
		return "", false
	}
	if s, hit := r.topics.lookup(b); hit {
		return s, true
	}
	n := len(r.base.Problems)
	r.checkString(b, start+2, "topic")
	s := string(b)
	if len(r.base.Problems) == n && s != "" {
		r.topics.add(s)
	}
	return s, true
}

// checkString reports the UTF-8 problems of b, which starts at offset off.
func (r *reader) checkString(b []byte, off int, field string) {
	e, w := checkUTF8(b)
	if e != nil {
		r.malformed(off+e.at, field, e.rule, field+": "+e.msg)
	}
	if w != nil {
		r.problem(off+w.at, field, LevelWarning, ErrSuspicious, 0, w.rule, field+": "+w.msg)
	}
}
