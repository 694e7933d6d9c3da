package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

func inspector() *Inspector {
	return NewInspector(inspect.Options{MaxFrame: 1 << 20}, nil, nil)
}

// TestHalfClose: the device closes its sending half; the broker still answers, and the device
// gets the answer and then EOF, as on a direct connection.
func TestHalfClose(t *testing.T) {
	addr := peer.Serve(t, func(c net.Conn) {
		defer c.Close()
		b, _ := io.ReadAll(c) // until the device's FIN
		c.Write(append([]byte("echo:"), b...))
	})
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{col, inspector()}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("not even MQTT"))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "echo:not even MQTT" {
		t.Fatalf("got %q, %v", got, err)
	}
	by, reason := col.waitClosed(t, 1)
	if by != "client" || !strings.Contains(reason, "half-close") {
		t.Errorf("close: %s %q", by, reason)
	}
}

// TestResets: a reset on either side reaches the other as a reset.
func TestResets(t *testing.T) {
	t.Run("broker-resets", func(t *testing.T) {
		addr := peer.Serve(t, func(c net.Conn) {
			buf := make([]byte, 10)
			c.Read(buf)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		})
		col := newCollector()
		srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{col}})
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x10, 0x00})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("device read: %v, want connection reset", err)
		}
		by, reason := col.waitClosed(t, 1)
		if by != "server" || !strings.Contains(reason, "reset") {
			t.Errorf("close: %s %q", by, reason)
		}
	})
	t.Run("device-vanishes", func(t *testing.T) {
		got := make(chan error, 1)
		addr := peer.Serve(t, func(c net.Conn) {
			_, err := io.Copy(io.Discard, c)
			got <- err
		})
		col := newCollector()
		srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{col}})
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x10})
		col.waitData(t, 1, stream.C2S, 1) // read by the proxy, so the reset comes after it
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		select {
		case err := <-got:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("broker read: %v, want connection reset", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("broker saw nothing")
		}
		by, reason := col.waitClosed(t, 1)
		if by != "client" || !strings.Contains(reason, "reset") {
			t.Errorf("close: %s %q", by, reason)
		}
	})
}

// TestBrokerDies: mosquitto is killed mid-session; the device sees the end, the close record
// says the server went, and the proxy serves the next connection (once a broker is back).
func TestBrokerDies(t *testing.T) {
	addr, broker := startMosquitto(t)
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{col}})
	got, cl := disconnects(t, srv.Addr().String(), "victim")
	broker.Kill() // the process is gone, its listener too
	select {
	case <-cl.Done():
	case d := <-got:
		t.Logf("DISCONNECT %#x", d.ReasonCode)
	case <-time.After(10 * time.Second):
		t.Fatal("the device did not notice")
	}
	by, reason := col.waitClosed(t, 1)
	if by != "server" {
		t.Errorf("close: %s %q", by, reason)
	}
	// Now nothing listens: the next device hears CONNACK 0x88.
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, ClientID: "next"})
	c.Write(connect)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if len(b) < 4 || b[0] != 0x20 || b[3] != 0x88 {
		by, reason := col.waitClosed(t, 2)
		t.Errorf("got % x, want CONNACK 0x88 (close: %s %q)", b, by, reason)
	}
}

// heapInUse returns the bytes of heap and stacks in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestHostile: a header announcing 268 MB followed by a flood, a slow drip, and a crowd of
// connections that never send CONNECT: the proxy forwards what it gets, stays within bounded
// memory, and a normal session alongside is not disturbed.
func TestHostile(t *testing.T) {
	var sunk sync.Map // connection -> *int64 bytes received by the sink broker
	sink := peer.Serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		sunk.Store(c, n)
		c.Close()
	})
	// The idle crowd goes to a broker that holds connections without a goroutine each, so the
	// memory measured is the proxy's (and the test clients').
	var heldMu sync.Mutex
	var held []net.Conn
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hln.Close()
	go func() {
		for {
			c, err := hln.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	real := broker(t, "embedded")
	hostile := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: sink}, Observers: []stream.Observer{inspector()}})
	crowdCol, dripCol := newCollector(), newCollector()
	crowd := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: hln.Addr().String()}, Observers: []stream.Observer{inspector(), crowdCol}})
	drip := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: sink}, Observers: []stream.Observer{inspector(), dripCol}})
	normal := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: real}, Observers: []stream.Observer{inspector()}})
	base := heapInUse()

	var wg sync.WaitGroup
	// 1. 268 MB announced, 64 MB sent.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial("tcp", hostile.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		hdr := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F} // PUBLISH, Remaining Length 268,435,455
		c.Write(hdr)
		junk := bytes.Repeat([]byte{0xAB}, 64<<10)
		for range 1024 {
			if _, err := c.Write(junk); err != nil {
				t.Error(err)
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	// 2. A slow drip: one byte at a time, each read by the proxy before the next is sent.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial("tcp", drip.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "drip"})
		for i, b := range connect {
			c.Write([]byte{b})
			if err := dripCol.awaitData(1, stream.C2S, i+1); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// 3. 1000 connections that say nothing.
	const idle = 1000
	conns := make([]net.Conn, 0, idle)
	for range idle {
		c, err := net.Dial("tcp", crowd.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Meanwhile, a normal session through the other proxy.
	pubSub(t, dialTCP(t, normal.Addr().String()), 20)
	wg.Wait()
	crowdCol.waitOpened(t, idle)
	used := int64(heapInUse()) - int64(base)
	// Two proxies' worth of goroutines and buffers per idle connection (client and upstream
	// sides), plus the test's own client conns: well under 32 KB each.
	per := used / idle
	t.Logf("memory: %d KB in use for %d idle connections (%d bytes each, test clients included)", used>>10, idle, per)
	if per > 32<<10 {
		t.Errorf("%d bytes per idle connection, want under 32 KB", per)
	}
	var maxSunk int64
	sunk.Range(func(_, v any) bool { maxSunk = max(maxSunk, v.(int64)); return true })
	if want := int64(5 + 64<<20); maxSunk != want {
		t.Errorf("the sink got %d bytes of the flood, want %d", maxSunk, want)
	}
	for _, c := range conns {
		c.Close()
	}
	heldMu.Lock()
	for _, c := range held {
		c.Close()
	}
	heldMu.Unlock()
	if drip.Metrics().Packets(stream.C2S, decode.CONNECT) < 1 {
		t.Error("the drip CONNECT was not seen")
	}
}

// TestBackpressure: a broker that does not read stops the device's writes (the proxy holds no
// more than one read buffer per direction); once it reads, everything arrives.
func TestBackpressure(t *testing.T) {
	release := make(chan struct{})
	got := make(chan int64, 1)
	addr := peer.Serve(t, func(c net.Conn) {
		<-release
		n, _ := io.Copy(io.Discard, c)
		got <- n
		c.Close()
	})
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{inspector()}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total = 64 << 20
	// The device writes until one write of 64 KB has waited 500 ms: the proxy passes on no more
	// than the broker takes, so it stalls once the socket buffers on both legs are full.
	stalled := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		hdr := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F} // one PUBLISH frame of 256 MB, mostly to come
		written, _ := c.Write(hdr)
		chunk := bytes.Repeat([]byte{0xAB}, 64<<10)
		waited := false
		for written < total {
			if rest := total - written; rest < len(chunk) {
				chunk = chunk[:rest]
			}
			if !waited {
				c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
			}
			n, err := c.Write(chunk)
			written += n
			if errors.Is(err, os.ErrDeadlineExceeded) && !waited {
				waited = true
				stalled <- int64(written)
				c.SetWriteDeadline(time.Time{})
				continue
			}
			if err != nil {
				return
			}
		}
		close(stalled) // never stalled
		c.(*net.TCPConn).CloseWrite()
	}()
	w, ok := <-stalled
	if !ok {
		t.Fatalf("the device wrote all %d MB into a broker that reads nothing", total>>20)
	}
	before := heapInUse()
	t.Logf("device stalled after %d MB (kernel socket buffers on both legs)", w>>20)
	close(release)
	select {
	case n := <-got:
		if n != total {
			t.Errorf("broker got %d bytes, want %d", n, total)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the flood did not drain")
	}
	<-done
	if after := heapInUse(); after > before+16<<20 {
		t.Errorf("heap grew from %d MB to %d MB while forwarding", before>>20, after>>20)
	}
}

// TestHalfCloseTimeout: after the device's half-close, a broker that neither answers nor closes
// is given HalfCloseTimeout; then both sides are reset and the close record says so.
func TestHalfCloseTimeout(t *testing.T) {
	gone := make(chan struct{})
	defer close(gone)
	addr := peer.Serve(t, func(c net.Conn) {
		io.Copy(io.Discard, c) // reads the EOF, then keeps the connection open
		<-gone
		c.Close()
	})
	col := newCollector()
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, HalfCloseTimeout: 200 * time.Millisecond, Observers: []stream.Observer{col}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xC0, 0x00})
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("device read: %v, want a reset after the half-close timeout", err)
	}
	by, reason := col.waitClosed(t, 1)
	if by != "client" || !strings.Contains(reason, "timed out") {
		t.Errorf("close: %s %q", by, reason)
	}
}
