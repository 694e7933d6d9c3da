package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// startProxy starts a proxy with cfg (listening on a free loopback port unless set) and stops
// it when the test ends.
func startProxy(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Listen.Addr == "" {
		cfg.Listen = Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// tap is a plain relay between the proxy and the broker that records both directions, so tests
// can compare what the broker sent and received with what the device received and sent.
type tap struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	toBroker []*peer.Buffer // per connection, in accept order
	toProxy  []*peer.Buffer
	done     []*sync.WaitGroup
	wg       sync.WaitGroup
}

func startTap(t testing.TB, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{ln: ln, target: target}
	go tp.serve()
	t.Cleanup(func() { ln.Close() })
	return tp
}

func (tp *tap) addr() string { return tp.ln.Addr().String() }

func (tp *tap) serve() {
	for {
		c, err := tp.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", tp.target)
		if err != nil {
			c.Close()
			continue
		}
		in, out := &peer.Buffer{}, &peer.Buffer{}
		tp.mu.Lock()
		tp.toBroker = append(tp.toBroker, in)
		tp.toProxy = append(tp.toProxy, out)
		wg := new(sync.WaitGroup)
		wg.Add(2)
		tp.done = append(tp.done, wg)
		tp.mu.Unlock()
		cp := func(dst, src net.Conn, rec *peer.Buffer) {
			defer wg.Done()
			// Record everything that arrives, even once the receiver has closed (a client gone
			// after its DISCONNECT): what the tap got is what the other end sent.
			buf := make([]byte, 32<<10)
			dstOK := true
			for {
				n, err := src.Read(buf)
				rec.Write(buf[:n])
				if dstOK && n > 0 {
					_, werr := dst.Write(buf[:n])
					dstOK = werr == nil
				}
				if err != nil {
					break
				}
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		}
		go cp(u, c, in)
		go cp(c, u, out)
	}
}

// conn waits until connection i has ended both ways and returns what went through it towards
// the broker and back.
func (tp *tap) conn(i int) (toBroker, fromBroker []byte) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if i >= len(tp.toBroker) {
		return nil, nil
	}
	ended := make(chan struct{})
	go func() { tp.done[i].Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
	}
	return tp.toBroker[i].Bytes(), tp.toProxy[i].Bytes()
}

// pahoClient connects an MQTT 5 client over conn and collects the messages it receives.
type pahoClient struct {
	*paho.Client
	mu   sync.Mutex
	msgs []*paho.Publish
	got  chan struct{}
}

func connectPaho(t testing.TB, conn net.Conn, id string) *pahoClient {
	t.Helper()
	pc := &pahoClient{got: make(chan struct{}, 1<<16)}
	// The client outlives the test when the proxy it talks to is stopped by a cleanup
	// registered before this one: logging then would panic.
	var logMu sync.Mutex
	ended := false
	t.Cleanup(func() { logMu.Lock(); ended = true; logMu.Unlock() })
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !ended {
			t.Logf(format, args...)
		}
	}
	pc.Client = paho.NewClient(paho.ClientConfig{
		ClientID:      id,
		Conn:          packets.NewThreadSafeConn(conn), // paho writes a packet in several Writes
		OnClientError: func(err error) { logf("%s: client error: %v", id, err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			logf("%s: server sent DISCONNECT %#x", id, d.ReasonCode)
		},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			pc.mu.Lock()
			pc.msgs = append(pc.msgs, pr.Packet)
			pc.mu.Unlock()
			pc.got <- struct{}{}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := pc.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	if ack.ReasonCode != 0 {
		t.Fatalf("connect %s: reason code %#x", id, ack.ReasonCode)
	}
	return pc
}

func (pc *pahoClient) wait(t testing.TB, n int) []*paho.Publish {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		pc.mu.Lock()
		k := len(pc.msgs)
		pc.mu.Unlock()
		if k >= n {
			break
		}
		select {
		case <-pc.got:
		case <-deadline:
			t.Fatalf("received %d of %d messages", k, n)
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]*paho.Publish(nil), pc.msgs...)
}

// collector is an Observer that keeps everything for assertions.
type collector struct {
	mu      sync.Mutex
	conns   map[int]*collected
	changed chan struct{} // closed and replaced at each event: an open, bytes, a close
}

type collected struct {
	info   stream.Conn
	data   [2]bytes.Buffer
	by     string
	reason string
}

func newCollector() *collector {
	return &collector{conns: map[int]*collected{}, changed: make(chan struct{})}
}

// notifyLocked wakes the waiters; c.mu is held.
func (c *collector) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *collector) Open(info *stream.Conn) stream.ConnObserver {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc := &collected{info: *info}
	c.conns[info.ID] = cc
	c.notifyLocked()
	return &collectorConn{c: c, cc: cc}
}

type collectorConn struct {
	c  *collector
	cc *collected
}

func (o *collectorConn) Data(d stream.Dir, _ time.Time, b []byte) {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	o.cc.data[d].Write(b)
	o.c.notifyLocked()
}

func (o *collectorConn) Gap(stream.Dir, time.Time, int) {}

func (o *collectorConn) Close(_ time.Time, e stream.End) {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	o.cc.by, o.cc.reason = e.By.String(), e.Detail
	o.c.notifyLocked()
}

// until waits until cond, called with c.mu held, holds; it looks again at each event, not at
// intervals. After 15 s it gives up and returns what calling failed says.
func (c *collector) until(cond func() bool, failed func() error) error {
	deadline := time.After(15 * time.Second)
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			return failed()
		}
	}
}

// waitOpened waits until n connections have opened.
func (c *collector) waitOpened(t testing.TB, n int) {
	t.Helper()
	if err := c.until(func() bool { return len(c.conns) >= n },
		func() error { return fmt.Errorf("%d of %d connections opened", len(c.conns), n) }); err != nil {
		t.Fatal(err)
	}
}

// waitData waits until connection id has shown at least n bytes in direction d.
func (c *collector) waitData(t testing.TB, id int, d stream.Dir, n int) {
	t.Helper()
	if err := c.awaitData(id, d, n); err != nil {
		t.Fatal(err)
	}
}

// awaitData is waitData for goroutines other than the test's: it returns what went wrong.
func (c *collector) awaitData(id int, d stream.Dir, n int) error {
	shown := func() int {
		if cc := c.conns[id]; cc != nil {
			return cc.data[d].Len()
		}
		return 0
	}
	return c.until(func() bool { return shown() >= n },
		func() error { return fmt.Errorf("connection %d showed %d of %d bytes %v", id, shown(), n, d) })
}

// waitFrame waits until connection id has shown a whole frame of type typ in direction d.
func (c *collector) waitFrame(t testing.TB, id int, d stream.Dir, typ decode.Type) {
	t.Helper()
	err := c.until(func() bool {
		cc := c.conns[id]
		if cc == nil {
			return false
		}
		for b := cc.data[d].Bytes(); len(b) > 0; {
			n, err := decode.SplitFrame(b, 0)
			if err != nil || n == 0 {
				return false
			}
			if decode.Type(b[0]>>4) == typ {
				return true
			}
			b = b[n:]
		}
		return false
	}, func() error { return fmt.Errorf("connection %d showed no %v %v", id, typ, d) })
	if err != nil {
		t.Fatal(err)
	}
}

// waitClosed waits for the close of connection id and returns who closed and why.
func (c *collector) waitClosed(t testing.TB, id int) (by, reason string) {
	t.Helper()
	err := c.until(func() bool {
		if cc := c.conns[id]; cc != nil && cc.by != "" {
			by, reason = cc.by, cc.reason
			return true
		}
		return false
	}, func() error { return fmt.Errorf("connection %d did not close", id) })
	if err != nil {
		t.Fatal(err)
	}
	return by, reason
}

// startMosquitto runs mosquitto on a free loopback port with extra config lines; it returns the
// address and the broker.
func startMosquitto(t testing.TB, extra ...string) (string, *peer.Mosquitto) {
	t.Helper()
	m := peer.StartMosquitto(t, extra...)
	return m.Addr, m
}

// pahoConnect connects a paho client to addr over TCP, sends c and returns the CONNACK and
// the error paho reports (a refused CONNACK is an error with the CONNACK).
func pahoConnect(t *testing.T, addr string, c *paho.Connect) (*paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.Connect(ctx, c)
}
