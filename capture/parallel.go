package capture

import (
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Parallel inspection: the goroutine that reads and reassembles packets puts each
// connection's bytes, gaps and ends into batches of events; Inspector.Workers goroutines
// inspect the connections (each connection always on the same worker) and render their
// records; one more goroutine writes the results of each batch in event order. The output is
// the same as with one goroutine.
//
// Before a worker, a framer goroutine of its own frames (and, without Inspector.Reuse,
// decodes) its connections' bytes (inspect.Preframer), one batch ahead: a single connection
// then keeps three goroutines busy (reading, framing, inspecting), not two. With Reuse the
// worker decodes, into the packets of the records it hands out again: fresh memory costs more
// than the decoding does; when the records are counted, the framer also lends the worker the
// batch's bytes (Preframer.FeedLent): the frames are slices of the batch, which is not reused
// until its records are done with, and the worker has the Conns copy out what they keep past
// the batch (Conn.Detach).

const (
	batchEvents = 512
	batchBytes  = 256 << 10
)

type evKind uint8

const (
	evData evKind = iota
	evGap
	evUnseen
	evCompact
	evClose
	evTLS
	evNote
)

type event struct {
	c      *pconn
	kind   evKind
	dir    stream.Dir
	t      time.Time
	off, n int // evData: arena[off:off+n]; evGap: n
	end    stream.End
	last   time.Time // evCompact: when the connection last carried something
	tls    *inspect.EncryptedRecord
	note   *stream.SourceNote // evNote
	seq    int64              // the event's place among all events
	// Results of the framer goroutine (connections with a Preframer): framed says it framed
	// the data event's bytes into fs; feed holds bytes the Conn must be fed, by direction:
	// after fs (the direction was handed back), or before a gap or close (what was held).
	framed bool
	fs     []inspect.Framed
	feed   [2][]byte
	// Results, written by the connection's worker.
	recs       []inspect.Record
	outA, outB int // rendered bytes: worker's out[outA:outB]
}

type batch struct {
	events []event
	arena  []byte
	out    [][]byte // rendered bytes per worker
	// done holds, by worker, the records rendered from the batch, for the worker to hand out
	// again (Inspector.Reuse) when the batch comes back to it with new events.
	done [][]inspect.Record
	wg   sync.WaitGroup
}

// pconn is a connection inspected by a worker.
type pconn struct {
	p      *parallel
	c      *inspect.Conn
	pre    *inspect.Preframer // owned by the worker's framer goroutine; nil: the Conn frames
	worker int                // -1 until the first event (assign)
	filter inspect.ConnFilter // worker-owned
	lentIn int64              // worker-owned: the last batch the worker framed lent bytes of this connection in
}

type parallel struct {
	in      *Inspector
	framers []chan *batch // by worker: batches go to the framer goroutine, then to the worker
	workers []chan *batch
	merge   chan *batch
	free    chan *batch
	cur     *batch
	seq     int64 // events added
	next    int   // round-robin worker assignment
	done    chan struct{}
	working atomic.Int32 // workers still running: the last one closes the render queue
	mu      sync.Mutex
	err     error
}

// renderJob is worker k's part of batch b, to render.
type renderJob struct {
	b *batch
	k int
}

func newParallel(in *Inspector) *parallel {
	p := &parallel{in: in, merge: make(chan *batch, 2), free: make(chan *batch, 4), done: make(chan struct{})}
	var rc chan renderJob
	if in.Render != nil {
		// The render goroutines take the batches of any worker: a single connection's records
		// are rendered on every core, a batch on one.
		rc = make(chan renderJob, 2*in.Workers)
		for range in.Workers {
			go p.render(rc)
		}
	}
	p.working.Store(int32(in.Workers))
	for k := 0; k < in.Workers; k++ {
		fr, ch := make(chan *batch, 2), make(chan *batch, 2)
		p.framers = append(p.framers, fr)
		p.workers = append(p.workers, ch)
		go p.frame(k, fr, ch)
		go p.work(k, ch, rc)
	}
	go p.merger()
	p.cur = p.newBatch()
	return p
}

// reuse reports whether records and packets are handed out again (Inspector.Reuse, with a
// consumer that says so: Render or Collect).
func (p *parallel) reuse() bool {
	return p.in.Reuse && (p.in.Collect != nil || p.in.Render != nil)
}

// poisonArenas makes tests overwrite the bytes of each batch once it is written, before it is
// used again, so that a frame or record still pointing into them shows.
var poisonArenas = false

// lend reports whether the framers frame the batches' bytes in place (Preframer.FeedLent):
// with reuse, when the records are counted (Collect). The copies it saves are fresh memory,
// which the summary's small heap pays for in page faults; with records that live until
// rendered, lending measured 3-13% slower (400,000 packets of one connection, --format jsonl).
func (p *parallel) lend() bool { return p.reuse() && p.in.Collect != nil }

func (p *parallel) newBatch() *batch {
	select {
	case b := <-p.free:
		return b
	default:
	}
	return &batch{out: make([][]byte, len(p.workers)), done: make([][]inspect.Record, len(p.workers))}
}

// add returns the next event of the current batch, for connection c, to be filled in place
// (an event is a few hundred bytes: not copied). Call added after.
func (p *parallel) add(c *pconn, kind evKind) *event {
	b := p.cur
	p.seq++
	n := len(b.events)
	if n < cap(b.events) {
		b.events = b.events[:n+1] // a slot the merger emptied, keeping its slices for reuse
	} else {
		b.events = append(b.events, event{})
	}
	e := &b.events[n]
	e.c, e.kind, e.seq = c, kind, p.seq
	return e
}

// added hands the batch on when it is full.
func (p *parallel) added() {
	if b := p.cur; len(b.events) >= batchEvents || len(b.arena) >= batchBytes {
		p.flush()
	}
}

// flush hands the current batch to the workers and the merger.
func (p *parallel) flush() {
	b := p.cur
	if len(b.events) == 0 {
		return
	}
	b.wg.Add(len(p.workers))
	for _, ch := range p.framers {
		ch <- b
	}
	p.merge <- b
	p.cur = p.newBatch()
}

// close waits until everything is written.
func (p *parallel) close() {
	p.flush()
	for _, ch := range p.framers {
		close(ch)
	}
	close(p.merge)
	<-p.done
}

func (p *parallel) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil
}

// frame runs worker k's Preframers over each batch, then passes it to the worker.
func (p *parallel) frame(k int, in, out chan *batch) {
	defer close(out)
	// With reuse, this goroutine only frames: the worker decodes, into the packets of the
	// records it reuses.
	reuse, lend := p.reuse(), p.lend()
	for b := range in {
		for i := range b.events {
			e := &b.events[i]
			if e.c == nil || e.c.worker != k || e.c.pre == nil {
				continue
			}
			pre := e.c.pre
			switch e.kind {
			case evData:
				e.framed = true
				if lend {
					e.fs, e.feed[e.dir&1] = pre.FeedLent(e.dir, e.t, b.arena[e.off:e.off+e.n], e.fs)
				} else {
					e.fs, e.feed[e.dir&1] = pre.FeedWith(e.dir, e.t, b.arena[e.off:e.off+e.n], e.fs, reuse)
				}
			case evGap:
				e.feed[e.dir&1] = pre.Handover(e.dir)
			case evCompact, evClose:
				// The end, or a quiet connection, which keeps no framing state twice: its
				// Conn frames from now on.
				e.feed[stream.C2S], e.feed[stream.S2C] = pre.Handover(stream.C2S), pre.Handover(stream.S2C)
				e.c.pre = nil
			}
		}
		out <- b
	}
}

// work inspects worker k's connections in each batch, then passes its part of the batch to
// out, the render goroutines (nil without Inspector.Render).
func (p *parallel) work(k int, ch chan *batch, out chan renderJob) {
	in := p.in
	scratch := make([]inspect.Record, 0, 16) // Conn.Framed's records, reused: those that pass go to e.recs
	var pool *inspect.Records
	if p.reuse() {
		// Collected records are done with at once; rendered ones when the batch comes back.
		pool = &inspect.Records{Counted: in.Collect != nil}
	}
	lend := p.lend()
	var batches int64 // batches seen
	var lent []*pconn // connections framed from the batch's bytes (FeedLent)
	for b := range ch {
		batches++
		if pool != nil {
			pool.Put(b.done[k]) // rendered when the batch went round before
			clear(b.done[k])
			b.done[k] = b.done[k][:0]
		}
		for i := range b.events {
			e := &b.events[i]
			if e.c == nil || e.c.worker != k {
				continue
			}
			var recs []inspect.Record
			if e.kind != evData {
				// What a Preframer held, handed back before a gap or the end.
				for d, held := range e.feed {
					if held != nil {
						recs = append(recs, e.c.c.Feed(stream.Dir(d), e.t, held)...)
					}
				}
			}
			switch e.kind {
			case evData:
				if !e.framed {
					recs = e.c.c.Feed(e.dir, e.t, b.arena[e.off:e.off+e.n])
					break
				}
				recs = e.c.c.FramedWith(e.fs, scratch[:0], pool)
				scratch = recs[:0]
				if lend && e.c.lentIn != batches {
					e.c.lentIn = batches
					lent = append(lent, e.c)
				}
				if rest := e.feed[e.dir&1]; rest != nil {
					recs = append(recs, e.c.c.Feed(e.dir, e.t, rest)...)
				}
			case evGap:
				recs = append(recs, e.c.c.Gap(e.dir, e.t, e.n)...)
			case evUnseen:
				e.c.c.Unseen(e.dir)
			case evCompact:
				e.c.c.Compact(e.t, e.last)
			case evClose:
				recs = append(recs, e.c.c.Finish(e.t)...)
				if r := e.c.c.Close(e.t, e.end); r != nil {
					recs = append(recs, r)
				}
			case evTLS:
				recs = []inspect.Record{e.tls}
			case evNote:
				e.c.c.Note(e.dir, e.t, *e.note)
			}
			e.recs = e.recs[:0]
			for _, r := range recs {
				if !e.c.filter.Pass(in.Filter, r) {
					continue
				}
				if in.Collect != nil {
					in.Collect(k, e.seq, r)
				} else {
					e.recs = append(e.recs, r)
				}
			}
			if pool != nil && in.Collect != nil {
				pool.Put(recs) // collected, or filtered out
			}
		}
		// The batch's bytes are used again once its records are written: what the Conns keep
		// of them, they copy.
		for _, c := range lent {
			c.c.Detach(pool)
		}
		clear(lent)
		lent = lent[:0]
		if out != nil {
			out <- renderJob{b, k}
		} else {
			b.wg.Done()
		}
	}
	if p.working.Add(-1) == 0 && out != nil {
		close(out)
	}
}

// render turns a worker's records of a batch into bytes (Inspector.Render), while the worker
// inspects the next batch: records do not change once returned.
func (p *parallel) render(ch chan renderJob) {
	for j := range ch {
		b, k := j.b, j.k
		out := b.out[k][:0]
		for i := range b.events {
			e := &b.events[i]
			if e.c == nil || e.c.worker != k {
				continue
			}
			e.outA = len(out)
			for _, r := range e.recs {
				out = p.in.Render(out, r)
			}
			e.outB = len(out)
			if p.reuse() {
				b.done[k] = append(b.done[k], e.recs...)
			}
		}
		b.out[k] = out
		b.wg.Done()
	}
}

func (p *parallel) merger() {
	defer close(p.done)
	for b := range p.merge {
		b.wg.Wait()
		var err error
		switch {
		case p.failed():
		case p.in.Render != nil:
			err = p.writeRendered(b)
		default:
		emit:
			for i := range b.events {
				for _, r := range b.events[i].recs {
					if err = p.in.Emit(r); err != nil {
						break emit
					}
				}
			}
		}
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
		}
		if f := p.in.Collected; f != nil && len(b.events) > 0 && !p.failed() {
			if err := f(b.events[len(b.events)-1].seq); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
		}
		for i := range b.events {
			e := &b.events[i]
			clear(e.fs) // let go of the packets
			*e = event{recs: e.recs[:0], fs: e.fs[:0]}
		}
		b.events, b.arena = b.events[:0], b.arena[:0]
		if poisonArenas {
			arena := b.arena[:cap(b.arena)]
			for i := range arena {
				arena[i] = 0xEE
			}
		}
		select {
		case p.free <- b:
		default:
		}
	}
}

// writeRendered writes the rendered bytes of a batch's events in event order. The events of
// one worker that follow each other have their bytes side by side in its buffer: each run of
// them is one write (the whole batch, for one connection), not one per event.
func (p *parallel) writeRendered(b *batch) error {
	w, from, to := -1, 0, 0 // the run being gathered: b.out[w][from:to]
	for i := range b.events {
		e := &b.events[i]
		if e.outB == e.outA {
			continue
		}
		if e.c.worker == w && e.outA == to {
			to = e.outB
			continue
		}
		if w >= 0 {
			if _, err := p.in.Out.Write(b.out[w][from:to]); err != nil {
				return err
			}
		}
		w, from, to = e.c.worker, e.outA, e.outB
	}
	if w >= 0 {
		_, err := p.in.Out.Write(b.out[w][from:to])
		return err
	}
	return nil
}

// assign picks the connection's worker when its first event comes. A connection that opens
// with a CONNECT goes by its Client Identifier, so that the connections of one identifier are
// inspected on one worker in capture order and a session takeover between them is seen as it
// happened (inspect.Options.Sessions); others take the next worker in turn.
func (c *pconn) assign(d stream.Dir, b []byte) {
	if c.worker >= 0 {
		return
	}
	p := c.p
	if id := connectClientID(d, b); id != "" {
		h := fnv.New32a()
		h.Write([]byte(id))
		c.worker = int(h.Sum32() % uint32(len(p.workers)))
		return
	}
	c.worker = p.next
	p.next = (p.next + 1) % len(p.workers)
}

// connectClientID returns the Client Identifier of a whole CONNECT at the start of a client's
// bytes, or "".
func connectClientID(d stream.Dir, b []byte) string {
	if d != stream.C2S {
		return ""
	}
	n, err := decode.SplitFrame(b, 1<<20)
	if err != nil || n == 0 || decode.Type(b[0]>>4) != decode.CONNECT {
		return ""
	}
	v, ok := decode.PeekVersion(b[:n])
	if !ok {
		return ""
	}
	if c, ok := decode.DecodeWith(b[:n], v, decode.Options{Lean: true}).(*decode.Connect); ok {
		return c.ClientID
	}
	return ""
}

func (c *pconn) Data(d stream.Dir, t time.Time, b []byte) {
	c.assign(d, b)
	bt := c.p.cur
	off := len(bt.arena)
	bt.arena = append(bt.arena, b...)
	e := c.p.add(c, evData)
	e.dir, e.t, e.off, e.n = d, t, off, len(b)
	c.p.added()
}

func (c *pconn) Gap(d stream.Dir, t time.Time, n int) {
	c.assign(d, nil)
	e := c.p.add(c, evGap)
	e.dir, e.t, e.n = d, t, n
	c.p.added()
}

func (c *pconn) Unseen(d stream.Dir, t time.Time) {
	c.assign(d, nil)
	e := c.p.add(c, evUnseen)
	e.dir, e.t = d, t
	c.p.added()
}

// Note implements stream.Noter.
func (c *pconn) Note(d stream.Dir, t time.Time, n stream.SourceNote) {
	c.assign(d, nil)
	e := c.p.add(c, evNote)
	e.dir, e.t, e.note = d, t, &n
	c.p.added()
}

// Compact implements stream.Compacter.
func (c *pconn) Compact(t, last time.Time) {
	c.assign(stream.C2S, nil)
	e := c.p.add(c, evCompact)
	e.t, e.last = t, last
	c.p.added()
}

func (c *pconn) Close(t time.Time, e stream.End) {
	c.assign(stream.C2S, nil)
	ev := c.p.add(c, evClose)
	ev.t, ev.end = t, e
	c.p.added()
}
