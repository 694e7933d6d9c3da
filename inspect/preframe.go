package inspect

import (
	"bytes"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// A Preframer frames (and, but with FeedWith's leave, decodes) the bytes of a connection
// ahead of its inspection, on another goroutine, so that a single connection keeps two cores
// busy: one frames, the other inspects (Conn.Framed). It does only what needs no inspected state: the frames of a
// direction read from its first byte, with no loss and no unreadable header, decoded once the
// protocol version is known from the options or the CONNECT, as Conn would decode them.
// Anything else (a loss, a header that cannot be framed, a connection whose start was not
// seen) hands the direction back to the Conn, with the bytes held, for good: Conn.Feed and
// Conn.Gap then do what they always do. The records are the same either way. A connection
// gone quiet (Conn.Compact) is handed back whole, so that it keeps no framing state twice.
//
// A Preframer is not safe for concurrent use; it never touches its Conn.
type Preframer struct {
	dirs    [2]preDir
	handed  [2]bool // the Conn frames the direction
	version decode.Version
	known   bool // version known: frames are decoded
}

type preDir struct {
	fr     decode.Framer
	topics decode.TopicCache
}

// Framed is a frame a Preframer framed, and decoded when it could, for Conn.Framed.
type Framed struct {
	Dir   stream.Dir
	T     time.Time
	frame []byte
	p     decode.Packet // nil: not decoded
	v     decode.Version
	lent  bool // frame is a slice of FeedLent's bytes
}

// NewPreframer returns the Preframer of a connection inspected with opts. A connection whose
// start was not seen (Conn.MidStream) has none: it is framed by its Conn from the start.
func NewPreframer(opts Options) *Preframer {
	p := &Preframer{version: decode.V5}
	if v := opts.Version; v.Valid() {
		p.version, p.known = v, true
	}
	for d := range p.dirs {
		p.dirs[d].fr = *decode.NewFramer(opts.MaxFrame)
	}
	return p
}

// Feed frames the next bytes of direction dir, seen at t, appending the whole frames to out.
// rest, when not nil, is bytes the Conn must be fed (Conn.Feed, after Conn.Framed of out): the
// direction was handed back, then or before. It aliases b or the Preframer's buffer.
func (p *Preframer) Feed(dir stream.Dir, t time.Time, b []byte, out []Framed) (_ []Framed, rest []byte) {
	return p.FeedWith(dir, t, b, out, false)
}

// FeedWith is Feed that, with leave, frames without decoding: the Conn decodes each frame
// into the packets of the records it reuses (Records), on its own goroutine, where they are
// in its cache.
func (p *Preframer) FeedWith(dir stream.Dir, t time.Time, b []byte, out []Framed, leave bool) (_ []Framed, rest []byte) {
	return p.feed(dir, t, b, out, leave, false)
}

// FeedLent is FeedWith with leave, for bytes b that the caller lends: it keeps them unchanged
// until it is done with the records of their frames (rendered or counted) and has called
// Conn.Detach after Conn.FramedWith. The frames whole in b are then slices of it, not copies,
// but for the packets a Conn keeps for its whole life (CONNECT, CONNACK, DISCONNECT, AUTH),
// which are copied.
func (p *Preframer) FeedLent(dir stream.Dir, t time.Time, b []byte, out []Framed) (_ []Framed, rest []byte) {
	return p.feed(dir, t, b, out, true, true)
}

func (p *Preframer) feed(dir stream.Dir, t time.Time, b []byte, out []Framed, leave, lend bool) (_ []Framed, rest []byte) {
	d := &p.dirs[dir&1]
	if p.handed[dir&1] {
		return out, b
	}
	if lend {
		d.fr.WriteLent(b)
	} else {
		d.fr.Write(b)
	}
	for {
		frame, err := d.fr.Next()
		if err != nil {
			// The Conn decides what follows a header that cannot be framed.
			p.handed[dir&1] = true
			return out, d.fr.Pending()
		}
		if frame == nil {
			return out, nil
		}
		lent := d.fr.Lent()
		if lent && lifelong(frame) {
			frame, lent = bytes.Clone(frame), false
		}
		f := Framed{Dir: dir & 1, T: t, frame: frame, lent: lent}
		if v, ok := connectVersion(dir, frame); ok {
			p.version, p.known = v, true
		}
		if p.known && !leave {
			f.p = decode.DecodeWith(frame, p.version, decode.Options{Lean: true, Topics: &d.topics})
			f.v = p.version
		}
		out = append(out, f)
	}
}

// lifelong reports whether frame is of a packet a Conn may keep for its whole life.
func lifelong(frame []byte) bool {
	switch decode.Type(frame[0] >> 4) {
	case decode.PUBLISH, decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP, decode.SUBSCRIBE,
		decode.SUBACK, decode.UNSUBSCRIBE, decode.UNSUBACK, decode.PINGREQ, decode.PINGRESP:
		return false
	}
	return true
}

// Handover gives direction dir back to the Conn before something only the Conn can judge (a
// loss, the end of the connection): it returns the bytes held of an unfinished frame, for
// Conn.Feed before that. Handing over again returns nothing.
func (p *Preframer) Handover(dir stream.Dir) []byte {
	if p.handed[dir&1] {
		return nil
	}
	p.handed[dir&1] = true
	if held := p.dirs[dir&1].fr.Pending(); len(held) > 0 {
		return held
	}
	return nil // nothing for the Conn to be fed
}

// Framed inspects frames a Preframer framed from the bytes of this connection, in the order
// it framed them, appending the records to out.
func (c *Conn) Framed(fs []Framed, out []Record) []Record { return c.FramedWith(fs, out, nil) }

// FramedWith is Framed taking the records of transient packets from recs (nil: from blocks
// shared by all Conns).
func (c *Conn) FramedWith(fs []Framed, out []Record, recs *Records) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own = false
	var src recordSource = recs
	if recs == nil {
		sl := slabs.Get().(*recordSlab)
		defer slabs.Put(sl)
		src = sl
	}
	for i := range fs {
		f := &fs[i]
		s := &c.streams[f.Dir]
		s.fr.Advance(len(f.frame))
		out = c.frame(f.Dir, f.T, f.frame, f, src, out)
	}
	return out
}

// Detach copies the packets the Conn keeps (in flight) out of the bytes lent to FeedLent, so
// that the caller may use those bytes again: call it once the Conn has framed all the frames
// of the bytes lent (FramedWith), before the bytes change. The records it kept are replaced by
// copies; recs (nil: none) takes back those it counted (Records.Counted).
func (c *Conn) Detach(recs *Records) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.lent {
		e, ok := c.flight[k.dir][k.id]
		if !ok || !e.rec.lent {
			continue // acknowledged, or copied already
		}
		old := e.rec
		e.rec = detach(old)
		c.flight[k.dir][k.id] = e
		if recs != nil {
			recs.release(old)
		}
	}
	clear(c.lent)
	c.lent = c.lent[:0]
}
