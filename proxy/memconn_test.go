package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mqscope/mqscope/stream"
)

func newTestPair(t *testing.T) (a, b *memConn) {
	t.Helper()
	a, b = memPair("a:1", "b:2")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestMemConnBothWays: writes larger than the buffer limit go both ways at once, whole and in
// order, each read into a small buffer.
func TestMemConnBothWays(t *testing.T) {
	a, b := newTestPair(t)
	msg := func(seed byte) []byte {
		p := make([]byte, 3*memBufferLimit+123)
		for i := range p {
			p[i] = seed + byte(i%251)
		}
		return p
	}
	toB, toA := msg(1), msg(7)
	var wg sync.WaitGroup
	send := func(c *memConn, p []byte) {
		defer wg.Done()
		if n, err := c.Write(p); err != nil || n != len(p) {
			t.Errorf("write: %d, %v", n, err)
		}
		c.CloseWrite()
	}
	got := make([][]byte, 2)
	recv := func(i int, c *memConn) {
		defer wg.Done()
		var out bytes.Buffer
		buf := make([]byte, 1000)
		for {
			n, err := c.Read(buf)
			out.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
		}
		got[i] = out.Bytes()
	}
	wg.Add(4)
	go send(a, toB)
	go send(b, toA)
	go recv(0, b)
	go recv(1, a)
	wg.Wait()
	if !bytes.Equal(got[0], toB) || !bytes.Equal(got[1], toA) {
		t.Fatalf("got %d and %d bytes, want %d and %d, or different bytes", len(got[0]), len(got[1]), len(toB), len(toA))
	}
}

func TestMemConnClose(t *testing.T) {
	a, b := newTestPair(t)
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// The peer reads what was written, then EOF; its writes fail as on a closed socket.
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("peer write: %v, want EPIPE", err)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) || !isClosed(err) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}
}

// TestMemConnHalfClose: after CloseWrite the peer reads EOF and can still answer.
func TestMemConnHalfClose(t *testing.T) {
	a, b := newTestPair(t)
	a.Write([]byte("bye"))
	a.CloseWrite()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "bye" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := b.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	b.CloseWrite()
	got, err = io.ReadAll(a)
	if err != nil || string(got) != "ok" {
		t.Fatalf("answer %q, %v", got, err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write after CloseWrite: %v, want EPIPE", err)
	}
}

// TestMemConnDeadlines: a deadline set in the past ends a read or a write already waiting (the
// proxy stops its pipes so at shutdown), with the error a socket gives; cleared, the connection
// works again.
func TestMemConnDeadlines(t *testing.T) {
	waiting := make(chan string, 1)
	a, b := newTestPair(t)
	a.waiting = func(op string) { waiting <- op }
	b.waiting = a.waiting
	read := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		read <- err
	}()
	if op := <-waiting; op != "read" {
		t.Fatalf("%s waits, want the read", op)
	}
	a.SetReadDeadline(time.Unix(1, 0))
	if err := <-read; !errors.Is(err, os.ErrDeadlineExceeded) || classify(err) != endTimeout {
		t.Errorf("read: %v, want a timeout", err)
	}

	// Fill b's buffer towards a so that the next write waits.
	if _, err := b.Write(make([]byte, memBufferLimit)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := b.Write([]byte("more"))
		wrote <- err
	}()
	if op := <-waiting; op != "write" {
		t.Fatalf("%s waits, want the write", op)
	}
	b.SetWriteDeadline(time.Unix(1, 0))
	if err := <-wrote; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write: %v, want a timeout", err)
	}

	a.waiting, b.waiting = nil, nil // both calls have returned
	a.SetReadDeadline(time.Time{})
	b.SetWriteDeadline(time.Time{})
	if n, err := io.ReadFull(a, make([]byte, memBufferLimit)); err != nil || n != memBufferLimit {
		t.Fatalf("read after clearing the deadline: %d, %v", n, err)
	}
	if _, err := b.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "again" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestMemListener: Dial meets Accept; after Close, Accept and Dial fail.
func TestMemListener(t *testing.T) {
	l := newMemListener(embeddedAddr)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s.LocalAddr().String() != embeddedAddr || c.RemoteAddr().String() != embeddedAddr {
		t.Errorf("addresses: accepted %v, dialled to %v", s.LocalAddr(), c.RemoteAddr())
	}
	c.Write([]byte("hi"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if _, err := l.Dial(context.Background()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial after Close: %v", err)
	}
}

// TestEmbeddedInMemory: the proxy reaches its embedded broker in memory, with no listening
// socket, and messages flow both ways through it.
func TestEmbeddedInMemory(t *testing.T) {
	srv := startProxy(t, Config{Embedded: true})
	if l, ok := srv.broker.srv.Listeners.Get("embedded-mem"); !ok {
		t.Fatal("no in-memory listener")
	} else if _, ok := l.(*listeners.Net); !ok {
		t.Fatalf("in-memory listener is a %T", l)
	}
	if n := srv.broker.srv.Listeners.Len(); n != 1 || srv.broker.Addr() != "" {
		t.Errorf("the embedded broker has %d listeners, stream.TCP address %q; want only the in-memory one", n, srv.broker.Addr())
	}
	if up := srv.Upstream(); up.Transport != stream.Memory {
		t.Errorf("upstream %v", up)
	}
	dial := dialTCP(t, srv.Addr().String())
	// Not "sub", pubSub's subscriber: this client's DISCONNECT is handled by the broker after
	// Disconnect returns, and the broker ending a session "sub" could remove the subscription of
	// the next client with that identifier (received 0 of 9 in a loaded full-suite run).
	s := connectPaho(t, dial(), "lister")
	conns := srv.Conns()
	if len(conns) != 1 || conns[0].Upstream != stream.Memory || conns[0].Server != embeddedAddr {
		t.Fatalf("connections: %+v", conns)
	}
	s.Disconnect(&paho.Disconnect{ReasonCode: 0})
	pubSub(t, dial, 3)
}

// TestMemConnPark: park leaves its function when there is nothing to read, and whatever makes
// something readable calls it once: bytes, the peer's CloseWrite or Close, a local Close, a read
// deadline passing (set in the past, or expiring).
func TestMemConnPark(t *testing.T) {
	cases := []struct {
		name string
		do   func(a, b *memConn)
	}{
		{"write", func(a, b *memConn) { b.Write([]byte("x")) }},
		{"peer CloseWrite", func(a, b *memConn) { b.CloseWrite() }},
		{"peer Close", func(a, b *memConn) { b.Close() }},
		{"Close", func(a, b *memConn) { a.Close() }},
		{"deadline in the past", func(a, b *memConn) { a.SetReadDeadline(time.Unix(1, 0)) }},
		{"deadline expiring", func(a, b *memConn) { a.SetReadDeadline(time.Now().Add(time.Millisecond)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newTestPair(t)
			woken := make(chan struct{}, 2)
			wake := func() { woken <- struct{}{} }
			if !a.park(wake) {
				t.Fatal("park with nothing to read returned false")
			}
			tc.do(a, b)
			<-woken
			if a.park(wake) {
				t.Fatal("park after the wake-up returned true: nothing to read")
			}
			select {
			case <-woken:
				t.Fatal("woken twice")
			default:
			}
		})
	}
}

// TestEmbeddedLogQuietOnClientEOF: the broker's warning about a client that closed without
// DISCONNECT is dropped (the close record says it), other warnings pass through.
func TestEmbeddedLogQuietOnClientEOF(t *testing.T) {
	var got []string
	h := &logHandler{logf: func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }}
	l := slog.New(h).With("listener", "embedded-mem")
	l.Warn("", "error", io.EOF)
	l.Warn("", "error", fmt.Errorf("read connection: %w", io.EOF))
	l.Warn("client rejected", "error", errors.New("bad auth"))
	if len(got) != 1 || !strings.Contains(got[0], "bad auth") || !strings.Contains(got[0], "listener=embedded-mem") {
		t.Errorf("logged %q, want only the bad auth warning", got)
	}
}
