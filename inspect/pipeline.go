package inspect

import (
	"sync"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// Observer is the stream.Observer that inspects every connection of a source, whatever the
// source (a capture, the proxy), and hands each connection's records to Emit in order: its
// packet records, its session record, its close record. With Match, only the packet records it
// accepts are emitted, and a connection's session and close records once one of its packets
// was (ConnFilter). It keeps the connections open now, for Snapshot.
//
// Records then go to a writer directly (read), or through an Output, whose queue never holds up
// the source and which also feeds the subscribers of a Hub (the proxy's control API, the UI).
type Observer struct {
	Options Options
	// Match selects packet records (nil: all).
	Match func(*PacketRecord) bool
	// Emit receives the records. Calls for one connection are serialised; connections may be
	// observed concurrently (the proxy), so Emit must be safe for that.
	Emit func(Record)

	mu    sync.Mutex
	conns map[int]*Conn
}

// Open implements stream.Observer: a connection of any transport but undecrypted TLS is
// inspected (an encrypted one is listed by its source, which alone knows what it saw of it).
func (o *Observer) Open(c *stream.Conn) stream.ConnObserver {
	ic := NewConnOf(c, o.Options)
	o.mu.Lock()
	if o.conns == nil {
		o.conns = map[int]*Conn{}
	}
	o.conns[c.ID] = ic
	o.mu.Unlock()
	return &observed{o: o, c: ic}
}

// NewConnOf is NewConn for a connection a source describes: mid-stream, and with what is known
// of its TLS, as the source says.
func NewConnOf(c *stream.Conn, opts Options) *Conn {
	ic := NewConn(c.ID, c.ClientString(), c.ServerString(), opts)
	if c.MidStream {
		ic.MidStream()
	}
	if c.TLS != nil {
		ic.SetTLS(c.TLS)
	}
	ic.src = c
	return ic
}

// Snapshot returns the negotiated state and counters of an open connection.
func (o *Observer) Snapshot(id int) (ConnState, bool) {
	o.mu.Lock()
	c := o.conns[id]
	o.mu.Unlock()
	if c == nil {
		return ConnState{}, false
	}
	return c.Snapshot(), true
}

// observed is one connection under an Observer.
type observed struct {
	o  *Observer
	c  *Conn
	cf ConnFilter
}

func (ob *observed) Data(d stream.Dir, t time.Time, b []byte) { ob.Keep(d, t, b) }

// Keep implements stream.Keeper: a packet is wanted when it passes Match.
func (ob *observed) Keep(d stream.Dir, t time.Time, b []byte) (completed, wanted bool) {
	for _, r := range ob.c.Feed(d, t, b) {
		_, isPacket := r.(*PacketRecord)
		pass := ob.cf.Pass(ob.o.Match, r)
		if isPacket {
			completed = true
			wanted = wanted || pass
		}
		if pass {
			ob.o.Emit(r)
		}
	}
	return completed, wanted
}

func (ob *observed) Gap(d stream.Dir, t time.Time, n int) { ob.pass(ob.c.Gap(d, t, n)) }

func (ob *observed) pass(recs []Record) {
	for _, r := range recs {
		if ob.cf.Pass(ob.o.Match, r) {
			ob.o.Emit(r)
		}
	}
}

// Alter implements stream.Alterer.
func (ob *observed) Alter(d stream.Dir, t time.Time, a *stream.Alteration) {
	ob.pass(ob.c.Alter(d, t, a))
}

// Note implements stream.Noter.
func (ob *observed) Note(d stream.Dir, t time.Time, n stream.SourceNote) { ob.c.Note(d, t, n) }

// Own implements stream.Originator.
func (ob *observed) Own(d stream.Dir, t time.Time, b []byte) { ob.pass(ob.c.FeedOwn(d, t, b)) }

// Unseen implements stream.Unseer.
func (ob *observed) Unseen(d stream.Dir, _ time.Time) { ob.c.Unseen(d) }

// Compact implements stream.Compacter.
func (ob *observed) Compact(t, last time.Time) { ob.c.Compact(t, last) }

func (ob *observed) Close(t time.Time, e stream.End) {
	ob.pass(ob.c.Finish(t))
	if r := ob.c.Close(t, e); r != nil && ob.cf.Pass(ob.o.Match, r) {
		ob.o.Emit(r)
	}
	ob.o.mu.Lock()
	delete(ob.o.conns, ob.c.ID())
	ob.o.mu.Unlock()
}

// ConnFilter applies a filter to the records of one connection as every mqscope output does:
// the packet records the filter accepts, and the session and close records of the connection
// once one of its packet records was accepted (so that what is shown of a connection comes with
// how it was negotiated and how it ended). Other records (an encrypted connection's) pass.
type ConnFilter struct{ matched bool }

// Pass reports whether r passes match (nil: everything passes).
func (cf *ConnFilter) Pass(match func(*PacketRecord) bool, r Record) bool {
	if match == nil {
		return true
	}
	switch r := r.(type) {
	case *PacketRecord:
		if match(r) {
			cf.matched = true
			return true
		}
		return false
	case *SessionRecord, *CloseRecord:
		return cf.matched
	}
	return true
}

// RecordFilter is ConnFilter for the records of many connections, interleaved.
type RecordFilter struct {
	match func(*PacketRecord) bool
	conns map[int]*ConnFilter
}

// NewRecordFilter filters with f (nil: everything passes).
func NewRecordFilter(f *Filter) *RecordFilter {
	rf := &RecordFilter{conns: map[int]*ConnFilter{}}
	if f != nil {
		rf.match = f.Match
	}
	return rf
}

// Pass reports whether r passes; a connection is forgotten at its close record.
func (rf *RecordFilter) Pass(r Record) bool {
	if rf == nil || rf.match == nil {
		return true
	}
	var id int
	switch r := r.(type) {
	case *PacketRecord:
		id = r.Conn
	case *SessionRecord:
		id = r.Conn
	case *CloseRecord:
		id = r.Conn
		cf := rf.conns[id]
		delete(rf.conns, id)
		return cf != nil && cf.Pass(rf.match, r)
	default:
		return true
	}
	cf := rf.conns[id]
	if cf == nil {
		cf = &ConnFilter{}
		rf.conns[id] = cf
	}
	return cf.Pass(rf.match, r)
}
