package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// pooledReader reads a plain TCP connection through its raw descriptor: it takes a buffer from
// the pool only when bytes are there (the read is attempted inside RawConn.Read's callback,
// which waits for readiness otherwise), so an idle connection holds no buffer, and a busy one
// costs one read system call per read, as net.Conn.Read does. Deadlines still apply. nil when
// c is not a plain TCP connection.
func pooledReader(c net.Conn, pool *sync.Pool) reader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReader{c: tc, rc: rc, pool: pool}
	r.fn = r.try
	return r
}

type rawReader struct {
	c    *net.TCPConn
	rc   syscall.RawConn
	pool *sync.Pool
	bp   *[]byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func (r *rawReader) try(fd uintptr) bool {
	if r.bp == nil {
		r.bp = r.pool.Get().(*[]byte)
	}
	for {
		n, err := syscall.Read(int(fd), *r.bp)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			// Nothing yet: give the buffer back while waiting.
			r.pool.Put(r.bp)
			r.bp = nil
			return false
		}
		r.n, r.err = n, err
		return true
	}
}

func (r *rawReader) read() ([]byte, error) {
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.fn); err != nil {
		return nil, &net.OpError{Op: "read", Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
	}
	if r.err != nil {
		return nil, &net.OpError{Op: "read", Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: os.NewSyscallError("read", r.err)}
	}
	if r.n <= 0 {
		return nil, io.EOF
	}
	return (*r.bp)[:r.n], nil
}

func (r *rawReader) release() {
	if r.bp != nil {
		r.pool.Put(r.bp)
		r.bp = nil
	}
}
