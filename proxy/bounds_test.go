package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// logLines collects what the proxy logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// count returns how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// metricsHave checks that m's text has every line of want.
func metricsHave(t *testing.T, m *Metrics, want ...string) {
	t.Helper()
	var b strings.Builder
	m.WriteTo(&b)
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("metrics lack %q:\n%s", w, b.String())
		}
	}
}

func connectBytes(t testing.TB, id string) []byte {
	t.Helper()
	b, err := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 30, ClientID: id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConnectTimeout: a device that sends nothing, or half a CONNECT, is closed once the
// CONNECT timeout has passed, and the close record says why; one that sent its CONNECT is not.
func TestConnectTimeout(t *testing.T) {
	col := newCollector()
	srv := startProxy(t, Config{Embedded: true, ConnectTimeout: 300 * time.Millisecond, Observers: []stream.Observer{col}})
	good := connectDevice(t, srv.Addr().String(), "good") // connection 1
	silent, err := net.Dial("tcp", srv.Addr().String())   // connection 2
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	half, err := net.Dial("tcp", srv.Addr().String()) // connection 3
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write(connectBytes(t, "half")[:6])
	for _, id := range []int{2, 3} {
		by, reason := col.waitClosed(t, id)
		if by != "proxy" || !strings.Contains(reason, "no CONNECT from the device within 300ms") {
			t.Errorf("connection %d: closed by %s: %q", id, by, reason)
		}
	}
	// The good device was accepted first: its timer would have fired before the others'.
	if conns := srv.Conns(); len(conns) == 0 || conns[0].ID != 1 {
		t.Errorf("the device that sent CONNECT was closed: %+v", conns)
	}
	good.send(t, &decode.Pingreq{})
	if typ := good.readFrame(t); typ != decode.PINGRESP {
		t.Errorf("good device got %v, want PINGRESP", typ)
	}
}

// TestMaxConns: beyond --max-conns, new connections are closed at once, said once and counted;
// once one ends, new ones are accepted again.
func TestMaxConns(t *testing.T) {
	var log logLines
	col := newCollector()
	srv := startProxy(t, Config{Embedded: true, MaxConns: 2, Observers: []stream.Observer{col}, Logf: log.logf})
	first := connectDevice(t, srv.Addr().String(), "one")
	connectDevice(t, srv.Addr().String(), "two")
	for range 3 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(connectBytes(t, "three"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		// Closed unread, the CONNECT makes the close a reset.
		if b, err := io.ReadAll(c); len(b) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("over the limit: got % x, %v; want a close", b, err)
		}
		c.Close()
	}
	if n := log.count("the most allowed (--max-conns)"); n != 1 {
		t.Errorf("said %d times that the limit was reached, want once: %q", n, log.lines)
	}
	metricsHave(t, srv.Metrics(), "mqscope_connections_refused_total 3\n")
	first.c.Close()
	col.waitClosed(t, 1)
	// The session leaves the proxy's table just after its close record: until then a new
	// connection may still be refused, which it notices at once.
	for try := 0; ; try++ {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(connectBytes(t, "four"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 1)
		_, err = c.Read(b)
		c.Close()
		if err == nil && b[0] == 0x20 {
			break
		}
		if try == 1000 {
			t.Fatal("no connection accepted after one closed")
		}
	}
	if n := log.count("below 2 connections again"); n != 1 {
		t.Errorf("said %d times that connections are accepted again, want once: %q", n, log.lines)
	}
}

// flakyListener fails its first fails accepts as a process out of file descriptors does.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptOutOfFiles: accept failing for lack of file descriptors is retried with a growing
// wait and said once, not at every try; then connections go through again.
func TestAcceptOutOfFiles(t *testing.T) {
	var log logLines
	srv, err := New(Config{Listen: Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, Embedded: true, Logf: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	srv.ln = &flakyListener{Listener: srv.ln, fails: 6}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	connectDevice(t, srv.Addr().String(), "patient")
	if n := log.count("too many open files"); n != 1 {
		t.Errorf("said %d times that accept failed, want once: %q", n, log.lines)
	}
	if n := log.count("working again after 6 failed tries"); n != 1 {
		t.Errorf("said %d times that accept works again, want once: %q", n, log.lines)
	}
	metricsHave(t, srv.Metrics(), "mqscope_accept_failures_total 6\n")
	srv.Shutdown(t.Context())
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// byteSink is a broker that reads and discards, signalling the bytes it got in all.
type byteSink struct {
	mu    sync.Mutex
	total int
	got   chan struct{}
}

func startSink(t *testing.T) (string, *byteSink) {
	s := &byteSink{got: make(chan struct{}, 1)}
	addr := peer.Serve(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			s.mu.Lock()
			s.total += n
			s.mu.Unlock()
			select {
			case s.got <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	})
	return addr, s
}

func (s *byteSink) wait(t *testing.T, total int) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		k := s.total
		s.mu.Unlock()
		if k >= total {
			return
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("broker got %d of %d bytes", k, total)
		}
	}
}

// TestBufferedBudget: when the connections together hold more unfinished frames than the
// budget, the one holding the most is closed (not the one that crossed the line), with a close
// record saying so, and the others go on.
func TestBufferedBudget(t *testing.T) {
	addr, sink := startSink(t)
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, MaxBuffered: 100_000, Observers: []stream.Observer{col}})
	sent := 0
	devices := make([]net.Conn, 0, 3)
	for i, n := range []int{20_000, 60_000, 30_000} {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		devices = append(devices, c)
		// CONNECT, then a PUBLISH declaring 1,000,000 bytes of which n come.
		b := append(connectBytes(t, "dev"+string(rune('a'+i))), 0x30, 0xC0, 0x84, 0x3D)
		b = append(b, make([]byte, n)...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		sent += len(b)
		if i < 2 {
			sink.wait(t, sent) // passed on, so counted, before the next device starts
		}
	}
	by, reason := col.waitClosed(t, 2)
	if by != "proxy" || !strings.Contains(reason, "closed for holding 60004 bytes of unfinished frames, the most of any connection") ||
		!strings.Contains(reason, "over the proxy's budget of 100000") || !strings.Contains(reason, "sent DISCONNECT 0x97 Quota exceeded") {
		t.Errorf("connection 2 closed by %s: %q", by, reason)
	}
	for _, id := range []int{1, 3} {
		col.mu.Lock()
		by := col.conns[id].by
		col.mu.Unlock()
		if by != "" {
			t.Errorf("connection %d was closed too", id)
		}
	}
	// Once every connection has ended, nothing is counted any more.
	srv.Shutdown(t.Context())
	if got := srv.buffered.Load(); got != 0 {
		t.Errorf("%d bytes still counted after every connection ended", got)
	}
}
