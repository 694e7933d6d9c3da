package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Inspector is the Observer that runs mqscope's inspection (package inspect) on every
// connection, inline with forwarding, and hands the records to an Output. It also counts
// findings in the metrics.
type Inspector struct {
	Options inspect.Options
	Out     *Output
	Metrics *Metrics // may be nil

	mu    sync.Mutex
	conns map[int]*inspect.Conn
}

// Open starts inspecting a connection.
func (in *Inspector) Open(info *stream.Conn) stream.ConnObserver {
	c := inspect.NewConn(info.ID, info.ClientString(), info.ServerString(), in.Options)
	in.mu.Lock()
	if in.conns == nil {
		in.conns = map[int]*inspect.Conn{}
	}
	in.conns[info.ID] = c
	in.mu.Unlock()
	return &inspectConn{in: in, c: c}
}

// Snapshot returns the negotiated state and counters of an open connection.
func (in *Inspector) Snapshot(id int) (inspect.ConnState, bool) {
	in.mu.Lock()
	c := in.conns[id]
	in.mu.Unlock()
	if c == nil {
		return inspect.ConnState{}, false
	}
	return c.Snapshot(), true
}

// Flush writes out what the output holds.
func (in *Inspector) Flush() error {
	if in.Out == nil {
		return nil
	}
	return in.Out.Close()
}

type inspectConn struct {
	in *Inspector
	c  *inspect.Conn
}

func (ic *inspectConn) Data(dir stream.Dir, t time.Time, b []byte) {
	for _, r := range ic.c.Feed(dir, t, b) {
		ic.emit(r)
	}
}

// Gap implements stream.ConnObserver; the proxy loses no bytes.
func (ic *inspectConn) Gap(dir stream.Dir, t time.Time, n int) {
	for _, r := range ic.c.Gap(dir, t, n) {
		ic.emit(r)
	}
}

func (ic *inspectConn) Close(t time.Time, e stream.End) {
	if r := ic.c.Close(t, e); r != nil {
		ic.emit(r)
	}
	ic.in.mu.Lock()
	delete(ic.in.conns, ic.c.ID())
	ic.in.mu.Unlock()
}

func (ic *inspectConn) emit(r inspect.Record) {
	if pr, ok := r.(*inspect.PacketRecord); ok && ic.in.Metrics != nil {
		for _, n := range pr.Notes {
			ic.in.Metrics.Finding(n.Rule, n.Level.String())
		}
	}
	if ic.in.Out != nil {
		ic.in.Out.Emit(r)
	}
}

// Output writes records on its own goroutine, so a slow terminal or file never holds up
// forwarding: records wait in a bounded queue, and when it is full they are dropped and counted
// (the count is printed at the end). It also feeds the event stream of the control API.
type Output struct {
	w       inspect.Writer
	fs      *filterState
	Events  *Hub
	metrics *Metrics
	ch      chan inspect.Record
	done    chan struct{}
	once    sync.Once
	err     error
	dropped atomic.Uint64
	closed  atomic.Bool
	mu      sync.RWMutex // Emit holds it for reading, Close for writing
}

// NewOutput starts writing records to w (nil: nowhere but the event hub), packets passing
// filter only (nil: all), with a queue of queue records (4096 when 0).
func NewOutput(w inspect.Writer, filter *inspect.Filter, events *Hub, m *Metrics, queue int) *Output {
	if queue <= 0 {
		queue = 4096
	}
	o := &Output{w: w, fs: newFilterState(filter), Events: events, metrics: m, ch: make(chan inspect.Record, queue), done: make(chan struct{})}
	go o.run()
	return o
}

// Emit queues a record; it never blocks.
func (o *Output) Emit(r inspect.Record) {
	if o.w == nil && o.Events == nil {
		return // nowhere to go: spare the hand-off
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.closed.Load() {
		return
	}
	select {
	case o.ch <- r:
	default:
		o.dropped.Add(1)
		if o.metrics != nil {
			o.metrics.Dropped(1)
		}
	}
}

// Dropped returns how many records were dropped because output could not keep up.
func (o *Output) Dropped() uint64 { return o.dropped.Load() }

func (o *Output) run() {
	defer close(o.done)
	for r := range o.ch {
		if o.Events != nil {
			if n := o.Events.publish(r); n > 0 && o.metrics != nil {
				o.metrics.EventsDropped(n)
			}
		}
		if o.w == nil || o.err != nil {
			continue
		}
		if o.fs.pass(r) {
			o.err = o.w.Write(r)
		}
		// Live output: once the queue is drained, push what the writer buffers to its reader.
		if f, ok := o.w.(inspect.Flusher); ok && len(o.ch) == 0 && o.err == nil {
			o.err = f.Flush()
		}
	}
}

// Close writes what is queued and closes the writer (the summary writer prints then).
func (o *Output) Close() error {
	o.once.Do(func() {
		o.mu.Lock()
		o.closed.Store(true)
		close(o.ch)
		o.mu.Unlock()
		<-o.done
		if o.Events != nil {
			o.Events.Close()
		}
		if o.w != nil {
			if err := o.w.Close(); o.err == nil {
				o.err = err
			}
		}
	})
	return o.err
}

// Hub fans records out to the control API's event streams. Each subscriber has its own bounded
// queue of records; its reader filters and renders them (Sub.Line), so neither a slow reader nor
// a costly filter holds up the output or the other subscribers: publishing only queues, and a
// full queue loses the record (counted).
type Hub struct {
	opts   inspect.JSONOptions
	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
}

// NewHub returns a hub rendering records with opts.
func NewHub(opts inspect.JSONOptions) *Hub { return &Hub{opts: opts, subs: map[*Sub]struct{}{}} }

// subQueue is how many records a subscriber may have waiting.
const subQueue = 1024

// Sub is one event stream.
type Sub struct {
	C       chan Event // closed when the hub closes or the stream ends
	fs      *filterState
	opts    inspect.JSONOptions
	dropped atomic.Uint64 // records lost because C was full
	lost    uint64        // of those, how many no Event has carried yet; guarded by the hub's mu
}

// Event is a record queued for a subscriber.
type Event struct {
	Record inspect.Record
	// Lost is how many records were dropped just before this one because the queue was full.
	Lost uint64
}

// Subscribe starts a stream of the records passing filter (nil: all).
func (h *Hub) Subscribe(filter *inspect.Filter) *Sub {
	s := &Sub{C: make(chan Event, subQueue), fs: newFilterState(filter), opts: h.opts}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.C)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Unsubscribe ends a stream.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.C)
	}
}

// publish queues r for every subscriber and returns how many could not take it.
func (h *Hub) publish(r inspect.Record) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.C <- Event{Record: r, Lost: s.lost}:
			s.lost = 0
		default:
			s.lost++
			s.dropped.Add(1)
			dropped++
		}
	}
	return dropped
}

// Dropped returns how many records the subscriber lost because it did not keep up.
func (s *Sub) Dropped() uint64 { return s.dropped.Load() }

// Line appends to buf the lines of e: {"kind":"dropped","records":N} when N records were lost
// just before it (whatever the filter), then the JSON line of its record when it passes the
// subscriber's filter. Only the stream's reader calls it.
func (s *Sub) Line(buf []byte, e Event) []byte {
	if e.Lost > 0 {
		buf = append(buf, `{"kind":"dropped","records":`...)
		buf = strconv.AppendUint(buf, e.Lost, 10)
		buf = append(buf, "}\n"...)
	}
	if !s.fs.pass(e.Record) {
		return buf
	}
	return append(inspect.AppendJSON(buf, e.Record, s.opts), '\n')
}

// Close ends every stream.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.C)
	}
}

// filterState applies a filter as mqscope read does: only the packet records it accepts, and
// the session and close records of the connections that had one.
type filterState struct {
	match   func(*inspect.PacketRecord) bool // nil: all
	matched map[int]bool
}

func newFilterState(f *inspect.Filter) *filterState {
	fs := &filterState{matched: map[int]bool{}}
	if f != nil {
		fs.match = f.Match
	}
	return fs
}

func (fs *filterState) pass(r inspect.Record) bool {
	if fs == nil || fs.match == nil {
		return true
	}
	switch r := r.(type) {
	case *inspect.PacketRecord:
		if fs.match(r) {
			fs.matched[r.Conn] = true
			return true
		}
		return false
	case *inspect.SessionRecord:
		return fs.matched[r.Conn]
	case *inspect.CloseRecord:
		ok := fs.matched[r.Conn]
		delete(fs.matched, r.Conn)
		return ok
	}
	return true
}
