package proxy

import (
	"net"
	"sync"
)

// readAhead reads on from a direction's source while a stage holds a frame of it (the
// intercept, waiting for the user), so that the source going away (a reset, a close, a read
// error) is seen then, not once the frame goes: the stage gives the frame up and the direction
// ends as that read error says. The bytes read meanwhile come after the held frame: the pipe
// takes them, in order, before it reads the source itself again. It holds up to max bytes;
// beyond them it stops reading, and the source waits as it would for a pipe that does not read.
type readAhead struct {
	src  net.Conn
	max  int
	size int           // bytes per read
	gone chan struct{} // closed once err is set

	mu      sync.Mutex // guards what follows
	changed sync.Cond  // on mu: bytes, an error, or the reading stopped
	running bool       // a goroutine reads the source
	stop    bool       // no stage holds a frame: stop after the read under way
	buf     []byte
	err     error // the error that ended the source
}

func newReadAhead(src net.Conn, max, size int) *readAhead {
	a := &readAhead{src: src, max: max, size: size, gone: make(chan struct{})}
	a.changed.L = &a.mu
	return a
}

// watch reads on from the source, unless it is already read or gone, and returns the channel
// closed when it is gone.
func (a *readAhead) watch() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stop = false
	if !a.running && a.err == nil && len(a.buf) < a.max {
		a.running = true
		go a.run()
	}
	return a.gone
}

// run reads until the source fails, max bytes are held, or no stage holds a frame any more.
func (a *readAhead) run() {
	tmp := make([]byte, a.size)
	for {
		n, err := a.src.Read(tmp)
		a.mu.Lock()
		a.buf = append(a.buf, tmp[:n]...)
		if err != nil {
			a.err = err
			close(a.gone)
		}
		quit := err != nil || a.stop || len(a.buf) >= a.max
		if quit {
			a.running = false
		}
		a.changed.Broadcast()
		a.mu.Unlock()
		if quit {
			return
		}
	}
}

// next is the pipe's read while reading ahead: the bytes read so far (waiting for the read
// under way when there are none), and the error that ended the source once they are all taken.
// ok is false when nothing was read ahead and nothing is being read: the pipe reads the source
// itself.
func (a *readAhead) next() (b []byte, err error, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stop = true
	for len(a.buf) == 0 && a.running {
		a.changed.Wait()
	}
	b, a.buf = a.buf, nil
	return b, a.err, len(b) > 0 || a.err != nil
}

// failed returns the error that ended the source, once the reading has stopped; what was read
// before it is dropped (it came after a frame given up).
func (a *readAhead) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.running {
		a.changed.Wait()
	}
	a.buf = nil
	return a.err
}

// watch is StageEnv.Watch.
func (p *pipeRun) watch() <-chan struct{} {
	if p.ahead == nil {
		p.ahead = newReadAhead(p.src, p.ss.srv.cfg.StageMaxFrame, p.ss.srv.cfg.BufferSize)
	}
	return p.ahead.watch()
}

// read returns the next bytes of the source: those read ahead while a stage held a frame
// first, then the error that ended the source after them, if one did.
func (p *pipeRun) read() ([]byte, error) {
	if p.ahead != nil {
		if b, err, ok := p.ahead.next(); ok {
			if len(b) > 0 {
				return b, nil // the error, if any, comes at the next read
			}
			return nil, err
		}
	}
	return p.rd.read()
}

// senderErr is the error that ended the source while a stage held a frame (ErrSenderGone).
func (p *pipeRun) senderErr() error {
	if p.ahead == nil {
		return nil
	}
	return p.ahead.failed()
}
