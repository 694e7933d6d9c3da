package proxy

import (
	"net"
	"os"
	"syscall"
)

// readWaiter returns a function that blocks until c has something to read (data, EOF or an
// error), without a buffer; nil when c is not a plain TCP connection. Pipes on idle
// connections wait with it and take a read buffer from a pool only when bytes arrive, so an
// idle connection holds no buffer.
func readWaiter(c net.Conn) func() error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	var one [1]byte
	var perr error
	ready := func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR {
			return false
		}
		perr = err
		return true
	}
	return func() error {
		perr = nil
		if err := rc.Read(ready); err != nil {
			return err
		}
		if perr != nil {
			// The peek took the socket's pending error (a reset): report it, as Read would.
			return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("recvfrom", perr)}
		}
		return nil
	}
}
