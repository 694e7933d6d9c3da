package stream

import (
	"bytes"
	"time"
)

// Alteration is what a fault rule of the proxy did to one frame of a direction: the frame as
// it came and the frames sent in its place. The proxy tells it to the observers (Alterer)
// before it sends those frames, which then reach the observers as Data like any other.
type Alteration struct {
	Rule string // the rule's name
	Did  string // what was done, in words ("PUBLISH grown from 30 to 203 bytes")
	Used string // the negotiated values a parameter used ("" when none)
	// Before is the frame the rule selected, as it came from its sender.
	Before []byte
	// After are the frames sent instead, in order (none: dropped). The first Kept of them are
	// Before forwarded as it came, when the fault acts after the frame.
	After [][]byte
	Kept  int
	// Own: the frames after the kept ones are the proxy's own packets (a DISCONNECT), sent in
	// its own name, not the sender's frame altered.
	Own bool
	// Closed: the proxy closes the connection once After is sent.
	Closed bool
	// Malformed: what is sent breaks the packet format on purpose.
	Malformed bool
}

// Alterer is implemented by a ConnObserver that wants to know of the frames the proxy's fault
// rules altered, dropped or added; Alter comes before the frames of After.
type Alterer interface {
	Alter(dir Dir, t time.Time, a *Alteration)
}

// A SourceNote is a finding the source made about a direction's bytes below MQTT (a
// capture's WebSocket framing) or about what it did to them (a proxy whose fault rules stopped
// applying).
type SourceNote struct {
	Rule    string // a rule ID: the standard's statement, or mqscope's (inspect)
	Warning bool   // a warning; otherwise an error
	Text    string
}

// Noter is implemented by a ConnObserver that takes the source's findings: each goes on the
// direction's next record (its next packet, or the close).
type Noter interface {
	Note(dir Dir, t time.Time, n SourceNote)
}

// AlterQueue matches the frames a direction sends with the alterations that sent them: an
// alteration waits in it until each of its frames was seen (or it is pushed out).
type AlterQueue struct {
	q []alterPos
}

type alterPos struct {
	a    *Alteration
	next int // the index in After of the next frame expected
	off  int // how much of it was seen, in pieces (Piece)
}

// maxAlterQueue bounds the alterations waiting for their frames.
const maxAlterQueue = 16

// Add queues a (not when it sent no frame), and returns the oldest alteration when the queue
// was full (its frames will not be matched).
func (q *AlterQueue) Add(a *Alteration) (pushed *Alteration) {
	if len(a.After) == 0 {
		return nil
	}
	if len(q.q) == maxAlterQueue {
		pushed = q.q[0].a
		q.q = q.q[1:]
	}
	q.q = append(q.q, alterPos{a: a})
	return pushed
}

// Len is the number of alterations waiting.
func (q *AlterQueue) Len() int { return len(q.q) }

// Match returns the alteration whose next frame is frame, and that frame's index in its After;
// an alteration whose frames have all been seen leaves the queue.
func (q *AlterQueue) Match(frame []byte) (a *Alteration, i int, ok bool) {
	for k := range q.q {
		p := &q.q[k]
		if p.off != 0 || !bytes.Equal(p.a.After[p.next], frame) {
			continue
		}
		a, i = p.a, p.next
		q.advance(k, len(frame))
		return a, i, true
	}
	return nil, 0, false
}

// Piece is Match for bytes that may be a piece of a frame (a recording sees what was written,
// and a fault may write a frame in pieces): ok when b continues the next frame an alteration
// expects, first when b begins it.
func (q *AlterQueue) Piece(b []byte) (a *Alteration, i int, first, ok bool) {
	for k := range q.q {
		p := &q.q[k]
		want := p.a.After[p.next][p.off:]
		if len(b) == 0 || len(b) > len(want) || !bytes.Equal(want[:len(b)], b) {
			continue
		}
		a, i, first = p.a, p.next, p.off == 0
		q.advance(k, len(b))
		return a, i, first, true
	}
	return nil, 0, false, false
}

// advance counts n bytes of alteration k's next frame as seen.
func (q *AlterQueue) advance(k, n int) {
	p := &q.q[k]
	if p.off += n; p.off < len(p.a.After[p.next]) {
		return
	}
	p.off = 0
	if p.next++; p.next == len(p.a.After) {
		q.q = append(q.q[:k], q.q[k+1:]...)
	}
}

// Drain empties the queue, returning what was in it.
func (q *AlterQueue) Drain() []*Alteration {
	out := make([]*Alteration, len(q.q))
	for i, p := range q.q {
		out[i] = p.a
	}
	q.q = nil
	return out
}
