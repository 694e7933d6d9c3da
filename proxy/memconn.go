package proxy

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// embeddedAddr is the address the in-process broker's connections report. Nothing listens
// there; it is an IP and port only because recordings need one (a pcapng conversation is
// written with TCP headers) and 1883 makes Wireshark decode it as MQTT.
const embeddedAddr = "127.0.0.1:1883"

// memBufferLimit bounds the bytes one direction of a memConn holds unread, as a socket buffer
// does: a writer waits beyond it.
const memBufferLimit = 64 << 10

// memKeep is the largest buffer a drained direction keeps for the next write; a larger one (left
// by a burst) is dropped, so an idle connection holds little.
const memKeep = 4 << 10

// memAddr is the address of one end of an in-memory connection.
type memAddr string

func (memAddr) Network() string  { return stream.Memory.String() }
func (a memAddr) String() string { return string(a) }

// memListener is a net.Listener for in-memory connections: Dial hands one end of a new
// connection to Accept and returns the other.
type memListener struct {
	addr  memAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	seq   atomic.Uint32
}

func newMemListener(addr string) *memListener {
	return &memListener{addr: memAddr(addr), conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next Dial.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: stream.Memory.String(), Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close stops Accept and refuses later Dials; connections already made stay open.
func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// Dial connects to the listener, waiting for it to accept.
func (l *memListener) Dial(ctx context.Context) (net.Conn, error) {
	// A distinct port per connection, for the broker's logs.
	local := memAddr("127.0.0.1:" + strconv.Itoa(1024+int(l.seq.Add(1)%64512)))
	c, s := memPair(local, l.addr)
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: stream.Memory.String(), Addr: l.addr, Err: syscall.ECONNREFUSED}
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: stream.Memory.String(), Addr: l.addr, Err: ctx.Err()}
	}
}

// memPipe is one direction of an in-memory connection: the bytes written and not yet read.
type memPipe struct {
	mu     sync.Mutex
	buf    []byte // unread bytes are buf[off:]
	off    int
	eof    bool          // the writer closed its sending half: reads end with io.EOF
	broken bool          // the reader closed: writes fail with EPIPE
	rsig   chan struct{} // capacity 1: bytes came, or eof
	wsig   chan struct{} // capacity 1: bytes were read, or broken
	wake   func()        // set by park: called once when there is something to read
}

// wakeLocked calls the function park left, if any.
func (p *memPipe) wakeLocked() {
	if w := p.wake; w != nil {
		p.wake = nil
		w()
	}
}

func newMemPipe() *memPipe {
	return &memPipe{rsig: make(chan struct{}, 1), wsig: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// memConn is one end of an in-memory connection. Unlike net.Pipe, a Write returns once its
// bytes are queued (up to memBufferLimit unread), as with a socket, so a writer does not wait for
// the peer to read. It has deadlines, CloseWrite (the peer reads EOF) and Close (the peer reads
// EOF, and its writes fail with EPIPE).
type memConn struct {
	in, out       *memPipe // what this end reads; what it writes
	local, remote memAddr
	rd, wd        memDeadline
	closed        chan struct{}
	once          sync.Once
	// waiting, set by tests before use, is called as a Read or a Write ("read", "write") is
	// about to wait.
	waiting func(op string)
}

// memPair returns the two ends of a new in-memory connection.
func memPair(a, b memAddr) (*memConn, *memConn) {
	ab, ba := newMemPipe(), newMemPipe()
	x := &memConn{in: ba, out: ab, local: a, remote: b, closed: make(chan struct{})}
	y := &memConn{in: ab, out: ba, local: b, remote: a, closed: make(chan struct{})}
	x.rd.onExpire, y.rd.onExpire = x.wakeReader, y.wakeReader
	return x, y
}

// park leaves fn to be called (once, from another goroutine's Write, Close, CloseWrite or an
// expiring read deadline) when there is something to read, and returns true; when there is
// something already (bytes, EOF, an error), it returns false and leaves nothing.
func (c *memConn) park(fn func()) bool {
	p := c.in
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > p.off || p.eof || c.rd.passed() {
		return false
	}
	select {
	case <-c.closed:
		return false
	default:
	}
	p.wake = fn
	return true
}

func (c *memConn) wakeReader() {
	c.in.mu.Lock()
	c.in.wakeLocked()
	c.in.mu.Unlock()
}

func (c *memConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: stream.Memory.String(), Source: c.local, Addr: c.remote, Err: err}
}

// waitRead waits until there are bytes to read or the peer closed its sending half.
func (c *memConn) waitRead() error {
	p := c.in
	for {
		select {
		case <-c.closed:
			return c.opErr("read", net.ErrClosed)
		case <-c.rd.wait():
			return c.opErr("read", os.ErrDeadlineExceeded)
		default:
		}
		p.mu.Lock()
		ready := len(p.buf) > p.off || p.eof
		p.mu.Unlock()
		if ready {
			return nil
		}
		if c.waiting != nil {
			c.waiting("read")
		}
		select {
		case <-p.rsig:
		case <-c.closed:
		case <-c.rd.wait():
		}
	}
}

func (c *memConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p := c.in
	for {
		if err := c.waitRead(); err != nil {
			return 0, err
		}
		p.mu.Lock()
		if len(p.buf) > p.off {
			break // still locked
		}
		eof := p.eof
		p.mu.Unlock()
		if eof {
			return 0, io.EOF
		}
		// Another reader took the bytes: wait again.
	}
	defer p.mu.Unlock()
	n := copy(b, p.buf[p.off:])
	p.off += n
	if p.off == len(p.buf) {
		p.buf, p.off = p.buf[:0], 0
		if cap(p.buf) > memKeep {
			p.buf = nil
		}
	} else {
		signal(p.rsig) // bytes left for the next read
	}
	signal(p.wsig)
	return n, nil
}

func (c *memConn) Write(b []byte) (int, error) {
	p := c.out
	n := 0
	for {
		select {
		case <-c.closed:
			return n, c.opErr("write", net.ErrClosed)
		case <-c.wd.wait():
			return n, c.opErr("write", os.ErrDeadlineExceeded)
		default:
		}
		p.mu.Lock()
		if p.broken || p.eof {
			p.mu.Unlock()
			return n, c.opErr("write", syscall.EPIPE)
		}
		if space := memBufferLimit - (len(p.buf) - p.off); space > 0 && n < len(b) {
			k := min(space, len(b)-n)
			// Move the unread bytes to the front when that spares growing the buffer or when
			// more than half of it has been read (so each byte moves at most once on average).
			if p.off > 0 && (len(p.buf)+k > cap(p.buf) || 2*p.off >= len(p.buf)) {
				p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
				p.off = 0
			}
			p.buf = append(p.buf, b[n:n+k]...)
			n += k
			signal(p.rsig)
			p.wakeLocked()
		}
		p.mu.Unlock()
		if n == len(b) {
			return n, nil
		}
		if c.waiting != nil {
			c.waiting("write")
		}
		select {
		case <-p.wsig:
		case <-c.closed:
		case <-c.wd.wait():
		}
	}
}

// CloseWrite closes the sending half: the peer reads what was written, then EOF.
func (c *memConn) CloseWrite() error {
	p := c.out
	p.mu.Lock()
	p.eof = true
	p.wakeLocked()
	p.mu.Unlock()
	signal(p.rsig)
	return nil
}

// Close ends both directions: the peer reads EOF after what was written, and its writes fail.
// Bytes not yet read here are dropped.
func (c *memConn) Close() error {
	first := false
	c.once.Do(func() { first = true; close(c.closed) })
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	c.CloseWrite()
	p := c.in
	p.mu.Lock()
	p.broken = true
	p.buf, p.off = nil, 0
	p.wakeLocked()
	p.mu.Unlock()
	signal(p.wsig)
	c.rd.set(time.Time{})
	c.wd.set(time.Time{})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// memDeadline is a read or write deadline: wait returns a channel closed once it has passed. A
// waiter keeps the channel it got: a deadline moved into the past closes that same channel.
type memDeadline struct {
	mu       sync.Mutex
	timer    *time.Timer
	c        chan struct{}
	onExpire func() // called when the deadline passes; set before use
}

func (d *memDeadline) set(t time.Time) {
	if d.setLocked(t) && d.onExpire != nil {
		d.onExpire()
	}
}

// passed reports whether the deadline has passed.
func (d *memDeadline) passed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return false
	}
	select {
	case <-d.c:
		return true
	default:
		return false
	}
}

// setLocked sets the deadline; true when it has passed already.
func (d *memDeadline) setLocked(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.c // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	expired := false
	if d.c != nil {
		select {
		case <-d.c:
			expired = true
		default:
		}
	}
	if t.IsZero() {
		if expired {
			d.c = nil
		}
		return false
	}
	if d.c == nil || expired {
		d.c = make(chan struct{})
	}
	if dur := time.Until(t); dur > 0 {
		c, f := d.c, d.onExpire
		d.timer = time.AfterFunc(dur, func() {
			close(c)
			if f != nil {
				f()
			}
		})
		return false
	}
	close(d.c)
	return true
}

func (d *memDeadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		d.c = make(chan struct{})
	}
	return d.c
}

// memReader is a pipe's reader for a memConn: like rawReader, it takes a buffer from the pool
// only once bytes are there, so an idle connection holds none.
type memReader struct {
	c    *memConn
	pool *sync.Pool
	bp   *[]byte
}

// pooledMemReader returns a memReader for c, nil when c is not a memConn.
func pooledMemReader(c net.Conn, pool *sync.Pool) reader {
	mc, ok := c.(*memConn)
	if !ok {
		return nil
	}
	return &memReader{c: mc, pool: pool}
}

func (r *memReader) read() ([]byte, error) {
	if err := r.c.waitRead(); err != nil {
		return nil, err
	}
	if r.bp == nil {
		r.bp = r.pool.Get().(*[]byte)
	}
	n, err := r.c.Read(*r.bp)
	if n > 0 {
		return (*r.bp)[:n], nil
	}
	return nil, err
}

func (r *memReader) release() {
	if r.bp != nil {
		r.pool.Put(r.bp)
		r.bp = nil
	}
}
