package inspect

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// Output writes records on its own goroutine, so a slow terminal or file never holds up
// forwarding: records wait in a bounded queue, and when it is full they are dropped and counted
// (the count is printed at the end). It also feeds the event stream of the control API.
type Output struct {
	w       Writer
	fs      *RecordFilter
	Events  *Hub
	drops   Drops
	ch      chan Record
	done    chan struct{}
	once    sync.Once
	err     error
	dropped atomic.Uint64
	closed  atomic.Bool
	mu      sync.RWMutex // Emit holds it for reading, Close for writing
}

// Drops is told of the records an Output or a Hub could not deliver (metrics counters).
type Drops interface {
	Dropped(n int)       // records the Output's queue had no room for
	EventsDropped(n int) // records a Hub subscriber's queue had no room for
}

// NewOutput starts writing records to w (nil: nowhere but the event hub), packets passing
// filter only (nil: all), with a queue of queue records (4096 when 0); drops (may be nil) is
// told of what was lost.
func NewOutput(w Writer, filter *Filter, events *Hub, drops Drops, queue int) *Output {
	if queue <= 0 {
		queue = 4096
	}
	o := &Output{w: w, fs: NewRecordFilter(filter), Events: events, drops: drops, ch: make(chan Record, queue), done: make(chan struct{})}
	go o.run()
	return o
}

// Emit queues a record; it never blocks.
func (o *Output) Emit(r Record) {
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
		if o.drops != nil {
			o.drops.Dropped(1)
		}
	}
}

// Dropped returns how many records were dropped because output could not keep up.
func (o *Output) Dropped() uint64 { return o.dropped.Load() }

func (o *Output) run() {
	defer close(o.done)
	for r := range o.ch {
		if o.Events != nil {
			if n := o.Events.publish(r); n > 0 && o.drops != nil {
				o.drops.EventsDropped(n)
			}
		}
		if o.w == nil || o.err != nil {
			continue
		}
		if o.fs.Pass(r) {
			o.err = o.w.Write(r)
		}
		// Live output: once the queue is drained, push what the writer buffers to its reader.
		if f, ok := o.w.(Flusher); ok && len(o.ch) == 0 && o.err == nil {
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
	opts   JSONOptions
	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
}

// NewHub returns a hub rendering records with opts.
func NewHub(opts JSONOptions) *Hub { return &Hub{opts: opts, subs: map[*Sub]struct{}{}} }

// subQueue is how many records a subscriber may have waiting.
const subQueue = 1024

// Sub is one event stream.
type Sub struct {
	C       chan Event // closed when the hub closes or the stream ends
	fs      *RecordFilter
	opts    JSONOptions
	dropped atomic.Uint64 // records lost because C was full
	lost    uint64        // of those, how many no Event has carried yet; guarded by the hub's mu
}

// Event is a record queued for a subscriber.
type Event struct {
	Record Record
	// Lost is how many records were dropped just before this one because the queue was full.
	Lost uint64
}

// Subscribe starts a stream of the records passing filter (nil: all).
func (h *Hub) Subscribe(filter *Filter) *Sub {
	s := &Sub{C: make(chan Event, subQueue), fs: NewRecordFilter(filter), opts: h.opts}
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
func (h *Hub) publish(r Record) (dropped int) {
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
	if !s.fs.Pass(e.Record) {
		return buf
	}
	return append(AppendJSON(buf, e.Record, s.opts), '\n')
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
