package inspect

import (
	"time"
	"unicode/utf8"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// resyncAt decides where framing resumes in b, the bytes of a direction after a loss (or from
// the first byte of a capture that began mid-connection). Every offset is a possible reading:
// the frames from it on must chain cleanly, each header plausible and each whole frame reading
// without problems (clean), to the end of what b holds, where what is left is the start of a
// plausible frame or nothing. The earliest such reading wins, since it explains the most
// bytes; a later one is never taken while an earlier one is still possible, so that a false
// boundary inside a large payload does not win over the packet that holds it while that
// packet's bytes are still coming.
//
// A reading is taken (ok) when it is at b's first byte (with first: no byte was dropped yet, so
// that is where the capture or the loss left off) with a whole frame, or when its frames
// reach exactly to the end of b, or when it holds at least two whole frames; otherwise more
// bytes are needed. off is then how many bytes can be dropped for good: those before the
// earliest reading still possible.
//
// With ended (Finish), no more bytes will come: readings still waiting for bytes are no longer possible,
// and the earliest reading that would be taken is, if any.
//
// clean is told whether the reading skips bytes (it does not begin where the capture or the
// loss left off): such a reading must also agree with the other direction.
func resyncAt(b []byte, first, ended bool, limit int, v decode.Version, clean func(frame []byte, skips bool) bool) (off int, ok bool) {
	for i := 0; i < len(b); i++ {
		skips := i > 0 || !first
		frames, end, possible := chainFrom(b[i:], limit, v, func(f []byte) bool { return clean(f, skips) })
		switch {
		case !possible:
			continue
		case frames > 0 && (i == 0 && first || end || frames >= 2):
			return i, true
		case ended:
			continue
		}
		return i, false
	}
	return len(b), false
}

// Finish says that no more bytes will come (the connection or the capture ended) and returns the
// records of what is held: after a loss, the frames of the reading that chains cleanly to the
// end of what was captured, which resynchronisation waited for while an earlier reading was
// still possible. Call it before Close.
func (c *Conn) Finish(t time.Time) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Record
	for d := range c.streams {
		s := &c.streams[d]
		s.fr.End()
		if s.fr.Resyncing() {
			out = append(out, c.drain(stream.Dir(d), t, s)...)
		}
	}
	return append(out, c.drainAlters(t)...)
}

// chainFrom follows the frames from the start of b: how many whole frames read cleanly, whether
// they end exactly at the end of b, and whether the reading is possible (no implausible
// header, no frame with problems, no frame over limit).
func chainFrom(b []byte, limit int, v decode.Version, clean func(frame []byte) bool) (frames int, end, possible bool) {
	at := 0
	for {
		if at == len(b) {
			return frames, true, true
		}
		h, whole, err := decode.ParseHeader(b[at:])
		switch {
		case err != nil:
			return frames, false, false
		case !whole:
			// The header is cut by the end of b: possible if what is there could start one.
			return frames, false, plausibleStart(b[at])
		case h.Type == decode.Reserved || !plausibleHeader(h, v):
			return frames, false, false
		}
		size := h.HeaderLen + h.RemainingLength
		switch {
		case size > limit:
			return frames, false, false
		case len(b)-at < size:
			return frames, false, true
		case h.Type == decode.PUBLISH && !plausibleTopic(b[at+h.HeaderLen:at+size]):
			return frames, false, false
		case !clean(b[at : at+size : at+size]):
			return frames, false, false
		}
		frames++
		at += size
	}
}

// plausibleStart reports whether a first byte could begin a fixed header.
func plausibleStart(b byte) bool {
	h := decode.FixedHeader{Type: decode.Type(b >> 4), Flags: b & 15}
	return h.Type != decode.Reserved && plausibleFlags(h)
}

// plausibleTopic rejects, before a full decode, a PUBLISH body whose topic does not fit or is
// not UTF-8: utf8.Valid stops at the first bad byte, where a decode reports every one, which
// matters when junk announces many large frames.
func plausibleTopic(body []byte) bool {
	if len(body) < 2 {
		return false
	}
	n := int(body[0])<<8 | int(body[1])
	return 2+n <= len(body) && utf8.Valid(body[2:2+n])
}
