package proxy

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// TestResetConn: the device of a connection the proxy resets reads a TCP reset (no DISCONNECT,
// no FIN), and the close record says the proxy did it.
func TestResetConn(t *testing.T) {
	col := newCollector()
	srv := startProxy(t, Config{Embedded: true, Observers: []stream.Observer{col}})
	d := connectDevice(t, srv.Addr().String(), "to-reset")
	if err := srv.ResetConn(1); err != nil {
		t.Fatal(err)
	}
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := d.c.Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the device read %d bytes, %v; want a reset", n, err)
	}
	by, reason := col.waitClosed(t, 1)
	if by != "proxy" || reason == "" {
		t.Errorf("closed by %q (%q), want the proxy, with why", by, reason)
	}
	if err := srv.ResetConn(1); !errors.Is(err, ErrNoConn) {
		t.Errorf("resetting it again: %v, want ErrNoConn", err)
	}
}
