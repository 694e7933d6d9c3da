package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Session states.
const (
	stConnecting = "connecting"
	stOpen       = "open"
	stHalfClosed = "half-closed"
	stClosing    = "closing"
)

// session is one device connection and its upstream connection.
type session struct {
	srv    *Server
	info   stream.Conn
	client net.Conn

	mu     sync.Mutex // guards server, state
	server net.Conn
	state  string

	omu sync.Mutex // serialises observer calls
	obs []stream.ConnObserver

	// wmu[d] guards writes in direction d, track[d], shut[d] (the destination's sending
	// half is closed) and heldDir[d].
	wmu     [2]sync.Mutex
	track   [2]tracker
	shut    [2]bool
	heldDir [2]int64
	// held is what the connection counts against the proxy's MaxBuffered: the bytes of its
	// unfinished frames, at most BufferedFrameMax of each.
	held atomic.Int64
	// releasing is what the budget counted as given back when it chose to close the connection.
	releasing atomic.Int64
	// cut makes terminate stop reading the device at once (not after its DISCONNECT).
	cut atomic.Bool
	// connectTimer ends the connection when no whole frame has come from the device within
	// ConnectTimeout; stopped by the first one.
	connectTimer *time.Timer

	version  atomic.Uint32 // protocol level of the device's CONNECT, 0 until seen
	bytes    [2]atomic.Uint64
	packets  [2]atomic.Uint64
	count    [2]frameFn
	stopping atomic.Bool
	// stopped is closed once stopping is set, or a direction ends in a reset or an error
	// (markStopped): it ends the stages' waits (a held or delayed frame would keep its pipe
	// from seeing the end).
	stopped  chan struct{}
	stopOnce sync.Once
	why      atomic.Pointer[string] // what the proxy did when it ended the connection
	// disconnected: the proxy sent the device a DISCONNECT of its own.
	disconnected atomic.Bool
	// stageReset: a stage reset the connection (ErrStageReset), so its end is a reset.
	stageReset atomic.Bool
	pipeDone   [2]chan struct{}
	termDone   chan struct{} // closed by terminate once why is set
	finished   chan struct{}
}

func newSession(srv *Server, id int, c net.Conn) *session {
	ss := &session{
		srv:    srv,
		client: c,
		state:  stConnecting,
		info: stream.Conn{
			ID:        id,
			Client:    addrPort(c.RemoteAddr()),
			Upstream:  srv.upstream.String(),
			Transport: srv.cfg.Listen.Transport,
			Broker:    srv.upstream.Transport,
			Start:     srv.cfg.Now(),
			Path:      srv.cfg.Listen.Path,
		},
		pipeDone: [2]chan struct{}{make(chan struct{}), make(chan struct{})},
		finished: make(chan struct{}),
		termDone: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	for d := range ss.count {
		ss.track[d] = newTracker()
		dir := stream.Dir(d)
		ss.count[d] = func(typ byte, start bool, n int) {
			if start {
				ss.packets[dir].Add(1)
			}
			srv.metrics.packet(dir, typ, start, n)
		}
	}
	return ss
}

func (ss *session) now() time.Time { return ss.srv.cfg.Now() }

// markStopped closes stopped, once stopping is set or the connection is going anyway.
func (ss *session) markStopped() { ss.stopOnce.Do(func() { close(ss.stopped) }) }

// run serves the connection to its end.
func (ss *session) run() {
	defer ss.srv.remove(ss)
	defer close(ss.finished)
	defer ss.releaseHeld() // before finished: whoever waits for it sees the bytes given back
	m := ss.srv.metrics
	m.connOpened()
	defer m.connClosed()
	ss.wmu[stream.C2S].Lock()
	ss.connectTimer = time.AfterFunc(ss.srv.cfg.ConnectTimeout, ss.noConnect)
	ss.wmu[stream.C2S].Unlock()
	defer ss.connectTimer.Stop()

	if err := ss.handshake(); err != nil {
		ss.open()
		ss.client.Close()
		detail := "TLS handshake failed: " + err.Error()
		if tc, ok := ss.client.(*tls.Conn); ok {
			if advice := tlsAdvice(err, tc.ConnectionState().ServerName); advice != "" {
				detail += "; " + advice
			}
		}
		end := stream.End{By: stream.Client, How: stream.Handshake, Detail: detail}
		if w := ss.stoppedWhy(); w != "" {
			end = stream.End{By: stream.Proxy, How: stream.Stopped, Detail: w}
		}
		ss.closeObservers(end)
		return
	}
	up, err := ss.srv.dial(context.Background())
	if err != nil {
		ss.connectTimer.Stop() // unavailable waits for the CONNECT as long itself
		ss.open()
		ss.unavailable(err)
		return
	}
	ss.mu.Lock()
	ss.server = up
	ss.info.Server = addrPort(up.RemoteAddr())
	if ss.stopping.Load() {
		ss.mu.Unlock()
		ss.open()
		up.Close()
		ss.client.Close()
		ss.closeObservers(stream.End{By: stream.Proxy, How: stream.Stopped, Detail: ss.stoppedWhy()})
		return
	}
	ss.state = stOpen
	ss.mu.Unlock()
	ss.open()

	ends := make(chan pipeEnd, 2)
	ss.goPipe(stream.S2C, up, ss.client, ends)
	ss.pipe(stream.C2S, ss.client, up, ends) // on this goroutine: one goroutine less per connection
	first := <-ends
	if first.kind == endEOF || first.kind == endShut {
		ss.setState(stHalfClosed)
	}
	second := <-ends
	// A pipe reports its end before passing it on (a reset, say): let both finish, or a plain
	// Close here could beat a reset and send the peer a FIN instead.
	<-ss.pipeDone[stream.S2C]
	<-ss.pipeDone[stream.C2S]
	ss.setState(stClosing)
	// When the proxy ends the connection, its DISCONNECT goes out before the close (a pipe may
	// have stopped before it, cut).
	why := ss.stoppedWhy()
	ss.client.Close()
	up.Close()
	end := describeEnd(first, second)
	if why != "" {
		end = stream.End{By: stream.Proxy, How: stream.Stopped, Detail: why}
		if ss.stageReset.Load() {
			end.How = stream.RST
		}
	}
	ss.closeObservers(end)
}

// stoppedWhy returns what the proxy did when it ended the connection ("" when it did not),
// waiting for terminate to write it down.
func (ss *session) stoppedWhy() string {
	if !ss.stopping.Load() {
		return ""
	}
	select {
	case <-ss.termDone:
	case <-time.After(3 * time.Second):
	}
	if w := ss.why.Load(); w != nil {
		return *w
	}
	return "closed by the proxy"
}

func (ss *session) setState(s string) {
	ss.mu.Lock()
	ss.state = s
	ss.mu.Unlock()
}

// handshake completes the device's TLS handshake, so a failure is reported as such.
func (ss *session) handshake() error {
	tc, ok := ss.client.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.srv.cfg.HandshakeTimeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}

func (ss *session) open() {
	ss.omu.Lock()
	defer ss.omu.Unlock()
	if ss.obs != nil {
		return
	}
	ss.obs = make([]stream.ConnObserver, 0, len(ss.srv.cfg.Observers))
	for _, o := range ss.srv.cfg.Observers {
		if co := o.Open(&ss.info); co != nil {
			ss.obs = append(ss.obs, co)
		}
	}
}

// viewer is an observer that inspects connections (Inspector) and so can show the fault stages
// a connection's negotiated state.
type viewer interface {
	View(id int) inspect.View
}

// view returns the live negotiated state of the connection from the first observer that
// inspects it (the zero View when none does). Observers are open by then.
func (ss *session) view() inspect.View {
	for _, o := range ss.srv.cfg.Observers {
		if v, ok := o.(viewer); ok {
			if w := v.View(ss.info.ID); w.Known() {
				return w
			}
		}
	}
	return inspect.View{}
}

// observeOwn shows the observers bytes the proxy sends on its own (stream.Originator).
func (ss *session) observeOwn(dir stream.Dir, t time.Time, b []byte) {
	ss.omu.Lock()
	for _, o := range ss.obs {
		if og, ok := o.(stream.Originator); ok {
			og.Own(dir, t, b)
		} else {
			o.Data(dir, t, b)
		}
	}
	ss.omu.Unlock()
}

// observeAlter tells the observers that want it what a fault did (stream.Alterer).
func (ss *session) observeAlter(dir stream.Dir, t time.Time, a *stream.Alteration) {
	ss.omu.Lock()
	for _, o := range ss.obs {
		if al, ok := o.(stream.Alterer); ok {
			al.Alter(dir, t, a)
		}
	}
	ss.omu.Unlock()
}

// observeBypass tells the observers (stream.Noter) that the fault rules no longer apply to
// direction dir, and why.
func (ss *session) observeBypass(dir stream.Dir, t time.Time, why string) {
	n := stream.SourceNote{Rule: inspect.RuleFaultsBypassed, Warning: true,
		Text: fmt.Sprintf("the proxy's fault rules no longer apply to the %s's bytes: %s; from there on they pass unchanged", dir.Sender().String(), why)}
	ss.omu.Lock()
	for _, o := range ss.obs {
		if no, ok := o.(stream.Noter); ok {
			no.Note(dir, t, n)
		}
	}
	ss.omu.Unlock()
}

func (ss *session) observe(dir stream.Dir, t time.Time, b []byte) {
	ss.omu.Lock()
	for _, o := range ss.obs {
		o.Data(dir, t, b)
	}
	ss.omu.Unlock()
}

func (ss *session) closeObservers(end stream.End) {
	// Closed for whoever hears of it: the control API no longer lists it.
	ss.srv.forget(ss)
	t := ss.now()
	ss.omu.Lock()
	for _, o := range ss.obs {
		o.Close(t, end)
	}
	ss.omu.Unlock()
}

// endKind says how a pipe ended.
type endKind int

const (
	endEOF     endKind = iota // the source closed its sending half (passed on as a half-close)
	endReset                  // the source reset the connection (passed on as a reset)
	endTimeout                // the source timed out (passed on as a reset)
	endError                  // another read error (passed on as a reset)
	endWrite                  // the destination refused the bytes (the source is reset)
	endStopped                // the proxy ended the connection
	endShut                   // a stage closed the sending half towards the destination
)

// how is the stream.How of an end.
func (k endKind) how() stream.How {
	switch k {
	case endEOF:
		return stream.FIN
	case endTimeout:
		return stream.Timeout
	case endWrite:
		return stream.Refused
	case endStopped:
		return stream.Stopped
	case endShut:
		return stream.FIN
	}
	return stream.RST // a reset, or a read error passed on as one
}

// addrPort is a net.Addr's IP and port (zero when it has none, as a memory pipe may not).
func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

type pipeEnd struct {
	dir  stream.Dir
	kind endKind
	err  error
}

// describeEnd is the end of a connection whose directions ended as first, then second: who
// ended it and how (as the first end says), and in Detail the account of both.
func describeEnd(first, second pipeEnd) stream.End {
	one := func(e pipeEnd) string {
		src, dst := e.dir.Sender().String(), e.dir.Peer().Sender().String()
		switch e.kind {
		case endEOF:
			return src + " closed (EOF), passed on as half-close"
		case endReset:
			return src + " reset the connection, passed on as reset"
		case endTimeout:
			return src + " timed out (" + errText(e.err) + "), passed on as reset"
		case endWrite:
			return dst + " refused data (" + errText(e.err) + ")"
		case endStopped:
			return "stopped by proxy"
		case endShut:
			return "the proxy half-closed towards the " + dst + " (" + errText(e.err) + ")"
		}
		return src + " read error (" + errText(e.err) + "), passed on as reset"
	}
	e := stream.End{By: first.dir.Sender(), How: first.kind.how(), Detail: one(first)}
	switch first.kind {
	case endWrite:
		e.By = first.dir.Peer().Sender()
	case endShut:
		e.By = stream.Proxy
	}
	if second.kind != endStopped && !(second.kind == endError && first.kind != endEOF) {
		e.Detail += "; then " + one(second)
	}
	return e
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// classify turns a read error into an end.
func classify(err error) endKind {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return endEOF
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return endReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return endTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return endTimeout
	}
	return endError
}

// pipe forwards src to dst until either fails: read, show the bytes to the observers, and
// write the same bytes at once, before the buffer is read into again.
func (ss *session) pipe(dir stream.Dir, src, dst net.Conn, ends chan<- pipeEnd) {
	p := ss.newPipe(dir, src, dst, ends)
	defer p.finish()
	for !p.step() {
	}
}

// goPipe runs pipe on goroutines of its own. From an in-memory connection (the embedded broker)
// it runs only while there are bytes or an end to pass on: each burst ends when the connection
// has nothing more, and the next bytes, end or deadline start the next one, so an idle
// connection holds no goroutine (and no stack, 8 KiB) in that direction.
func (ss *session) goPipe(dir stream.Dir, src, dst net.Conn, ends chan<- pipeEnd) {
	mc, ok := src.(*memConn)
	if !ok {
		go ss.pipe(dir, src, dst, ends)
		return
	}
	p := ss.newPipe(dir, src, dst, ends)
	var burst func()
	wake := func() { go burst() }
	burst = func() {
		for {
			if mc.park(wake) {
				return
			}
			if p.step() {
				p.finish()
				return
			}
		}
	}
	go burst()
}

// pipeRun is one direction's forwarding state.
type pipeRun struct {
	ss       *session
	dir      stream.Dir
	src, dst net.Conn
	ends     chan<- pipeEnd
	rd       reader
	bp       *[]byte // the buffer of a connReader
	fp       *framePipe
	t        time.Time // when the bytes going through were read
	// ahead reads on from the source while a stage holds a frame (StageEnv.Watch); nil until
	// one does.
	ahead *readAhead
}

// send passes b on to the destination, read (or, sent later by a stage, sent) at t.
func (p *pipeRun) send(t time.Time, b []byte) error {
	ss, dir := p.ss, p.dir
	// Observe what goes on, after the stages (a PUBACK a fault dropped is not inspected as if
	// delivered), and before forwarding it: once the bytes are sent the peer may answer, and
	// its answer must not be inspected before what it answers (a PUBLISH before the CONNACK
	// that allowed it). Inspection is inline and takes about a microsecond. A stage's later
	// bytes hold the direction's output (Later.mu) as the pipe's do, so they never come
	// between observing and writing.
	ss.observe(dir, t, b)
	ss.wmu[dir].Lock()
	defer ss.wmu[dir].Unlock()
	// Track the frames before writing: once written, the peer may answer and a shutdown may
	// ask where the frames stand and which version the device speaks.
	ss.account(dir, b)
	if dir == stream.C2S && ss.version.Load() == 0 {
		if v, ok := decode.PeekVersion(ss.track[stream.C2S].headBytes()); ok {
			ss.version.Store(uint32(v))
		}
	}
	_, err := p.dst.Write(b)
	if err != nil {
		ss.track[dir].broken = true
	}
	return err
}

func (ss *session) newPipe(dir stream.Dir, src, dst net.Conn, ends chan<- pipeEnd) *pipeRun {
	p := &pipeRun{ss: ss, dir: dir, src: src, dst: dst, ends: ends}
	p.rd = pooledReader(src, &ss.srv.bufs)
	if p.rd == nil {
		p.rd = pooledMemReader(src, &ss.srv.bufs)
	}
	if p.rd == nil {
		p.bp = ss.srv.bufs.Get().(*[]byte)
		p.rd = &connReader{c: src, buf: *p.bp}
	}
	if f := ss.srv.cfg.Stages; f != nil {
		later := newLater(ss.srv.cfg.Clock)
		env := StageEnv{Now: ss.srv.cfg.Now, Rand: ss.srv.cfg.Rand, Clock: ss.srv.cfg.Clock, Later: later, Done: ss.stopped,
			Alter: func(a *stream.Alteration) { ss.observeAlter(dir, ss.now(), a) }}
		if _, mem := src.(*memConn); !mem {
			// An in-memory source (the embedded broker) goes only when the proxy ends it, and its
			// pipe reads in bursts that a read ahead would confuse.
			env.Watch = p.watch
		}
		if stages := f(&ss.info, dir, env); len(stages) > 0 {
			later.stopping = ss.stopping.Load
			p.fp = newFramePipe(stages, ss.srv.cfg.StageMaxFrame, func(b []byte) error { return p.send(p.fp.cur.Time, b) }, later)
			p.fp.state = ss.view()
			p.fp.version = func() decode.Version { return decode.Version(ss.version.Load()) }
			p.fp.alter = ss.observeAlter
			p.fp.bypass = ss.observeBypass
		}
	}
	return p
}

// account counts b as passed on in direction dir, forwarded or sent by the proxy itself (or,
// when the broker is unreachable, the device's bytes the proxy answers), in the connection's
// counters, the metrics and the frame tracker. Bytes are counted as they go, never by the
// lengths frames declare. The caller holds wmu[dir] where a pipe may run.
func (ss *session) account(dir stream.Dir, b []byte) {
	t := &ss.track[dir]
	t.feed(b, ss.count[dir])
	ss.bytes[dir].Add(uint64(len(b)))
	ss.srv.metrics.bytesIn(dir, len(b))
	if dir == stream.C2S && t.frames > 0 && ss.connectTimer != nil {
		ss.connectTimer.Stop()
		ss.connectTimer = nil
	}
	if h := int64(min(t.partial(), ss.srv.cfg.BufferedFrameMax)); h != ss.heldDir[dir] {
		d := h - ss.heldDir[dir]
		ss.heldDir[dir] = h
		ss.held.Add(d)
		if total := ss.srv.buffered.Add(d); d > 0 && ss.srv.cfg.MaxBuffered > 0 && total > int64(ss.srv.cfg.MaxBuffered) {
			ss.srv.overBudget()
		}
	}
}

// releaseHeld gives back what the connection counted against MaxBuffered.
func (ss *session) releaseHeld() {
	ss.srv.buffered.Add(-ss.held.Swap(0))
	ss.srv.releasing.Add(-ss.releasing.Swap(0))
}

// noConnect ends the connection when the device has not sent a whole frame (its CONNECT) within
// ConnectTimeout of being accepted.
func (ss *session) noConnect() {
	ss.wmu[stream.C2S].Lock()
	got := ss.track[stream.C2S].frames > 0
	ss.wmu[stream.C2S].Unlock()
	if !got {
		ss.terminate(nil, "", fmt.Sprintf("no CONNECT from the device within %v of accepting it", ss.srv.cfg.ConnectTimeout))
	}
}

// finish releases the pipe's buffer and reports it done.
func (p *pipeRun) finish() {
	if p.fp != nil {
		p.fp.end()
	}
	p.rd.release()
	if p.bp != nil {
		p.ss.srv.bufs.Put(p.bp)
	}
	close(p.ss.pipeDone[p.dir])
}

// step reads once and forwards what it read; true when the pipe has ended (its end reported).
func (p *pipeRun) step() bool {
	ss, dir, src, dst, ends := p.ss, p.dir, p.src, p.dst, p.ends
	b, rerr := p.read()
	if n := len(b); n > 0 {
		p.t = ss.now()
		var werr error
		if p.fp != nil {
			werr = p.fp.feed(&ss.info, dir, p.t, b)
		} else {
			werr = p.send(p.t, b)
		}
		p.rd.release()
		if errors.Is(werr, ErrSenderGone) {
			if err := p.senderErr(); err != nil {
				// The source went away while a stage held a frame of it: the direction ends as
				// that read says, the frame given up.
				rerr, werr = err, nil
			}
		}
		if werr != nil {
			if errors.Is(werr, ErrStageClose) && ss.stopping.CompareAndSwap(false, true) {
				ss.markStopped()
				// A stage ended the connection (a fault's DISCONNECT, then close): what it
				// emitted went first, and both sides get a FIN, the other pipe seeing that the
				// proxy stopped the connection rather than resetting its destination.
				w := errText(werr)
				ss.why.Store(&w)
				close(ss.termDone)
				ends <- pipeEnd{dir, endStopped, werr}
				dst.Close()
				src.Close()
				return true
			}
			if errors.Is(werr, ErrStageReset) && ss.stopping.CompareAndSwap(false, true) {
				ss.markStopped()
				// A stage reset the connection: both sides get a reset at once.
				w := errText(werr)
				ss.why.Store(&w)
				ss.stageReset.Store(true)
				close(ss.termDone)
				ends <- pipeEnd{dir, endStopped, werr}
				resetNow(dst)
				resetNow(src)
				return true
			}
			if errors.Is(werr, ErrStageShut) {
				// A stage half-closed the connection towards the destination, as the source
				// closing would: this direction ends, the other goes on.
				ends <- pipeEnd{dir, endShut, werr}
				p.shut()
				return true
			}
			if ss.stopping.Load() || errors.Is(werr, ErrDirClosed) {
				// Stopped, or a stage's wait ended because the connection is going.
				ends <- pipeEnd{dir, endStopped, werr}
				return true
			}
			// As a direct connection would: the sender finds its peer gone. Report first,
			// so this end comes before the one it causes in the other direction.
			ends <- pipeEnd{dir, endWrite, werr}
			ss.markStopped()
			reset(src)
			dst.Close()
			return true
		}
	}
	if rerr == nil {
		return false
	}
	if ss.stopping.Load() {
		ends <- pipeEnd{dir, endStopped, rerr}
		return true
	}
	k := classify(rerr)
	if p.fp != nil {
		// Before the end is reported: a stage may hold it (a slow close). A hold cut short
		// (the connection taken down meanwhile) is in the stage's own record; the end goes on.
		_ = p.fp.holdEnd()
	}
	ends <- pipeEnd{dir, k, rerr}
	if k == endEOF {
		p.shut()
	} else {
		ss.markStopped()
		reset(dst)
		src.Close()
	}
	return true
}

// shut closes the sending half towards the destination, passing on a close.
func (p *pipeRun) shut() {
	ss, dir := p.ss, p.dir
	ss.wmu[dir].Lock()
	ss.shut[dir] = true
	closeWrite(p.dst)
	ss.wmu[dir].Unlock()
	// The other direction may go on, but not forever if its sender vanished.
	p.dst.SetReadDeadline(ss.now().Add(ss.srv.cfg.HalfCloseTimeout))
}

// reader is where a pipe gets its bytes: read returns the next bytes (valid until release).
type reader interface {
	read() ([]byte, error)
	release()
}

// connReader reads with net.Conn.Read into a buffer of its own.
type connReader struct {
	c   net.Conn
	buf []byte
}

func (r *connReader) read() ([]byte, error) {
	n, err := r.c.Read(r.buf)
	if n > 0 {
		// Bytes first; the error (EOF included) comes again on the next read.
		return r.buf[:n], nil
	}
	if err == nil {
		return nil, nil
	}
	return nil, err
}

func (r *connReader) release() {}

// terminate ends the connection from the proxy. With rc set and an MQTT 5 device, the device
// first gets a DISCONNECT with that reason code (and reasonString) placed between two of the
// broker's frames; why goes to the close record.
func (ss *session) terminate(rc *decode.ReasonCode, reasonString, why string) {
	if !ss.stopping.CompareAndSwap(false, true) {
		<-ss.finished
		return
	}
	ss.markStopped()
	if ss.cut.Load() {
		ss.client.SetReadDeadline(time.Unix(1, 0))
	}
	w := why
	ss.mu.Lock()
	up := ss.server
	ss.mu.Unlock()
	if up == nil {
		// Still connecting or answering for an unreachable broker.
		ss.why.Store(&w)
		close(ss.termDone)
		ss.client.Close()
		<-ss.finished
		return
	}
	// Stop the broker-to-device direction between reads, then speak on its behalf.
	up.SetReadDeadline(time.Unix(1, 0))
	ss.client.SetWriteDeadline(ss.now().Add(2 * time.Second))
	<-ss.pipeDone[stream.S2C]
	ss.wmu[stream.S2C].Lock()
	v := decode.Version(ss.version.Load())
	switch {
	case rc == nil:
	case v != decode.V5:
		if v == 0 {
			w += "; no DISCONNECT: the device sent no CONNECT"
		} else {
			w += "; no DISCONNECT: the device speaks MQTT " + v.String()
		}
	case ss.shut[stream.S2C]:
		w += "; no DISCONNECT: the connection to the device was already half-closed"
	case !ss.track[stream.S2C].boundary():
		w += "; no DISCONNECT: the broker's last frame was incomplete"
	default:
		b, err := disconnectFrame(*rc, reasonString)
		if err == nil {
			_, err = ss.client.Write(b)
		}
		if err == nil {
			ss.account(stream.S2C, b)
			ss.observeOwn(stream.S2C, ss.now(), b)
			ss.disconnected.Store(true)
			w += fmt.Sprintf("; sent DISCONNECT %s to the device", rc.String())
		} else {
			w += "; DISCONNECT not delivered: " + errText(err)
		}
	}
	ss.wmu[stream.S2C].Unlock()
	ss.why.Store(&w)
	close(ss.termDone)
	closeWrite(ss.client)
	// Let the device read the DISCONNECT and close; then close both sides (at once when cut).
	if !ss.cut.Load() {
		ss.client.SetReadDeadline(ss.now().Add(time.Second))
	}
	up.Close()
	select {
	case <-ss.pipeDone[stream.C2S]:
	case <-time.After(time.Second):
	}
	ss.client.Close()
	<-ss.finished
}

// resetBoth ends the connection from the proxy with a TCP reset to both sides; why goes to the
// close record.
func (ss *session) resetBoth(why string) {
	if !ss.stopping.CompareAndSwap(false, true) {
		<-ss.finished
		return
	}
	ss.why.Store(&why)
	close(ss.termDone)
	ss.markStopped()
	ss.mu.Lock()
	up := ss.server
	ss.mu.Unlock()
	reset(ss.client)
	if up != nil {
		reset(up)
	}
	<-ss.finished
}

// disconnectFrame encodes the MQTT 5 DISCONNECT the proxy sends a device.
func disconnectFrame(rc decode.ReasonCode, reasonString string) ([]byte, error) {
	d := &decode.Disconnect{Base: decode.Base{Version: decode.V5}, ReasonCode: rc, HasReason: true}
	if reasonString != "" {
		d.Properties = decode.Properties{decode.StrProp(decode.PropReasonString, reasonString)}
	}
	return decode.Encode(nil, d)
}

// abort closes both sides at once.
func (ss *session) abort() {
	ss.stopping.Store(true)
	ss.markStopped()
	ss.mu.Lock()
	up := ss.server
	ss.mu.Unlock()
	if up != nil {
		up.Close()
	}
	ss.client.Close()
}

func (ss *session) status() ConnStatus {
	ss.mu.Lock()
	in := &ss.info
	st := ConnStatus{ID: in.ID, Client: in.ClientString(), Server: in.ServerString(), Listener: in.Transport,
		Upstream: in.Broker, Opened: in.Start, State: ss.state}
	ss.mu.Unlock()
	if v := decode.Version(ss.version.Load()); v != 0 {
		st.Version = v.String()
	}
	for d := range 2 {
		st.Bytes[d] = ss.bytes[d].Load()
		st.Packets[d] = ss.packets[d].Load()
	}
	st.Counters.C2SBytes, st.Counters.S2CBytes = st.Bytes[0], st.Bytes[1]
	st.Counters.C2SPackets, st.Counters.S2CPackets = st.Packets[0], st.Packets[1]
	return st
}

// unavailable answers the device's CONNECT with a CONNACK Server unavailable (0x88 in MQTT 5,
// return code 3 in 3.1.1) when the broker cannot be reached, then closes.
func (ss *session) unavailable(dialErr error) {
	up := ss.srv.upstream.String()
	why := fmt.Sprintf("upstream %s unreachable: %s", up, errText(dialErr))
	buf := make([]byte, 1024)
	fr := decode.NewFramer(64 << 10)
	deadline := ss.now().Add(ss.srv.cfg.ConnectTimeout)
	ss.client.SetReadDeadline(deadline)
	var frame []byte
	for frame == nil {
		n, err := ss.client.Read(buf)
		if n > 0 {
			ss.account(stream.C2S, buf[:n])
			ss.observe(stream.C2S, ss.now(), buf[:n])
			fr.Write(buf[:n])
			var ferr error
			frame, ferr = fr.Next()
			if ferr != nil {
				why += "; the device's first bytes are not an MQTT frame"
				break
			}
		}
		if err != nil && frame == nil {
			if classify(err) == endTimeout {
				why += fmt.Sprintf("; no CONNECT from the device within %v", ss.srv.cfg.ConnectTimeout)
			} else {
				why += "; the device left before sending CONNECT"
			}
			break
		}
	}
	if frame != nil {
		v, ok := decode.PeekVersion(frame)
		if ok {
			ss.version.Store(uint32(v))
			ack := &decode.Connack{Base: decode.Base{Version: v}}
			if v == decode.V5 {
				ack.ReasonCode = decode.ServerUnavailable
				ack.Properties = decode.Properties{decode.StrProp(decode.PropReasonString, "mqscope: "+why)}
			} else {
				ack.ReasonCode = 3 // Connection Refused, Server unavailable
			}
			b, err := decode.Encode(nil, ack)
			if err == nil {
				ss.client.SetWriteDeadline(ss.now().Add(5 * time.Second))
				_, err = ss.client.Write(b)
			}
			if err == nil {
				ss.account(stream.S2C, b)
				ss.observeOwn(stream.S2C, ss.now(), b)
				if v == decode.V5 {
					why += "; sent CONNACK 0x88 Server unavailable"
				} else {
					why += "; sent CONNACK return code 3 Server unavailable"
				}
			}
		} else {
			why += "; the device's first packet is not a CONNECT"
		}
	}
	closeWrite(ss.client)
	// Give the device a moment to read the CONNACK and close first.
	ss.client.SetReadDeadline(ss.now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(ss.client, 64<<10))
	ss.client.Close()
	if w := ss.why.Load(); w != nil {
		why += "; " + *w
	}
	ss.closeObservers(stream.End{By: stream.Proxy, How: stream.Unreached, Detail: why})
}

// closeWrite closes c's sending half: TCP FIN, TLS close_notify then FIN, WebSocket close frame.
func closeWrite(c net.Conn) {
	switch c := c.(type) {
	case *tls.Conn:
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.CloseWrite()
		closeWrite(c.NetConn())
	case interface{ CloseWrite() error }:
		c.CloseWrite()
	default:
		c.Close()
	}
}

// reset closes c with a TCP reset where it can, so the peer sees what the proxy saw.
func reset(c net.Conn) {
	if tc := tcpConn(c); tc != nil {
		tc.SetLinger(0)
	}
	c.Close()
}

// resetNow resets c's TCP connection at once (linger 0), beneath TLS and WebSocket, which send
// nothing first; a connection in memory is closed.
func resetNow(c net.Conn) {
	if tc := tcpConn(c); tc != nil {
		tc.SetLinger(0)
		tc.Close()
	}
	c.Close()
}

func tcpConn(c net.Conn) *net.TCPConn {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case *tls.Conn:
			c = x.NetConn()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}

// isClosed reports errors from using a connection the proxy closed itself.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(errText(err), "use of closed")
}
