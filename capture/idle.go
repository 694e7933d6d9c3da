package capture

import (
	"time"

	"github.com/mqscope/mqscope/stream"
)

// Quiet connections: the analyzer keeps the connections it reports in a list ordered by the
// time of their last packet (each packet moves its connection to the back), and, before each
// packet (and each tick of a live capture), tells those at the front that have carried nothing
// for Options.Idle that they may let go of memory (stream.Compacter), once per quiet spell. It
// costs a comparison and two pointer moves a packet.

// idleList links the connections, least recently active first.
type idleList struct {
	head, tail *tcpConn
}

// touch moves s to the back of the list (it just carried a packet).
func (l *idleList) touch(s *tcpConn) {
	if l.tail == s {
		return
	}
	l.remove(s)
	s.idlePrev, s.idleNext = l.tail, nil
	if l.tail != nil {
		l.tail.idleNext = s
	} else {
		l.head = s
	}
	l.tail = s
	s.idleListed = true
}

// remove takes s off the list, if it is on it.
func (l *idleList) remove(s *tcpConn) {
	if !s.idleListed {
		return
	}
	if s.idlePrev != nil {
		s.idlePrev.idleNext = s.idleNext
	} else {
		l.head = s.idleNext
	}
	if s.idleNext != nil {
		s.idleNext.idlePrev = s.idlePrev
	} else {
		l.tail = s.idlePrev
	}
	s.idlePrev, s.idleNext, s.idleListed = nil, nil, false
}

// compactIdle tells the connections quiet since before now-Options.Idle to let go of memory,
// and takes them off the list until their next packet.
func (a *Analyzer) compactIdle(now time.Time) {
	if a.opts.Idle <= 0 {
		return
	}
	limit := now.Add(-a.opts.Idle)
	for s := a.idle.head; s != nil && s.lastT.Before(limit); s = a.idle.head {
		a.idle.remove(s)
		if k, ok := s.conn.(stream.Compacter); ok && !s.closed {
			k.Compact(now, s.lastT)
		}
	}
}
