package proxy

import (
	"slices"
	"sync"
	"time"
)

// Later sends what a stage emits outside Frame, when its time comes on the pipeline's clock (a
// PUBACK delayed by 2 s while other frames pass, held acknowledgements released after a time).
// What it sends goes after the direction's stages, through the observers like any frame, and in
// order with the direction's other writes: never inside another frame, and entries due at the
// same time in the order they were scheduled.
//
// Nothing is sent once the direction has ended or the proxy is ending the connection: what is
// pending then is dropped, and each entry's drop hears why (ErrDirClosed), so that a fault can
// report what it never sent.
type Later struct {
	clock Clock
	// mu is the direction's output: held while frames go through the stages (framePipe.feed)
	// and while due entries are sent, so the two never interleave.
	mu       sync.Mutex
	send     func(t time.Time, b []byte) error
	framed   func() bool // false once the stream passes unframed; called with mu held
	stopping func() bool // the proxy is ending the connection

	qmu    sync.Mutex // guards queue, seq, closed
	queue  []*laterEntry
	seq    uint64
	closed bool
}

type laterEntry struct {
	due  time.Time
	seq  uint64
	run  func(emit func([]byte) error)
	drop func(error)
	stop func() bool
}

// NewLater is a Later that sends with send (for testing stages outside a proxy; a proxy makes
// its own for each direction with stages). A nil clock is the real one.
func NewLater(clock Clock, send func(b []byte) error) *Later {
	l := newLater(clock)
	l.send = func(_ time.Time, b []byte) error { return send(b) }
	return l
}

func newLater(clock Clock) *Later {
	if clock == nil {
		clock = realClock{now: time.Now}
	}
	return &Later{clock: clock, framed: func() bool { return true }, stopping: func() bool { return false }}
}

// After calls run once d has passed on the clock, from a goroutine of the clock's, with the
// direction's output held: what run emits goes out then, each emit a whole frame. If the
// direction ends first, or its stream is no longer framed, run is not called and drop (when not
// nil) hears why: ErrDirClosed or ErrNotFramed. After may be called from Frame (it does not wait
// for the output) or from anywhere else.
func (l *Later) After(d time.Duration, run func(emit func([]byte) error), drop func(error)) {
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		if drop != nil {
			drop(ErrDirClosed)
		}
		return
	}
	l.seq++
	e := &laterEntry{due: l.clock.Now().Add(d), seq: l.seq, run: run, drop: drop}
	i, _ := slices.BinarySearchFunc(l.queue, e, func(a, b *laterEntry) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	l.queue = slices.Insert(l.queue, i, e)
	// The timer is set with qmu held, so close sees every entry's stop.
	e.stop = l.clock.AfterFunc(d, l.fire)
	l.qmu.Unlock()
}

// Pending is the number of entries not yet sent nor dropped.
func (l *Later) Pending() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return len(l.queue)
}

// fire sends every entry that is due, in order.
func (l *Later) fire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.qmu.Lock()
	n := 0
	for n < len(l.queue) && !l.queue[n].due.After(now) {
		n++
	}
	due := slices.Clone(l.queue[:n])
	l.queue = slices.Delete(l.queue, 0, n)
	closed := l.closed
	l.qmu.Unlock()
	var why error
	switch {
	case closed || l.stopping():
		why = ErrDirClosed
	case !l.framed():
		why = ErrNotFramed
	}
	emit := func(b []byte) error { return l.send(now, b) }
	for _, e := range due {
		if why != nil {
			if e.drop != nil {
				e.drop(why)
			}
			continue
		}
		e.run(emit)
	}
}

// Close ends the direction for l: what is pending is dropped, each drop hearing ErrDirClosed,
// and nothing is sent after Close returns.
func (l *Later) Close() {
	l.mu.Lock() // an entry being sent goes out first
	l.qmu.Lock()
	l.closed = true
	q := l.queue
	l.queue = nil
	l.qmu.Unlock()
	l.mu.Unlock()
	for _, e := range q {
		e.stop()
		if e.drop != nil {
			e.drop(ErrDirClosed)
		}
	}
}
