package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Embedded is an in-process MQTT 5 broker (mochi-mqtt) for `--upstream embedded`: the proxy
// then works with nothing else installed. The proxy reaches it in memory (Dial), so nothing
// listens on a port and a connection costs no file descriptor on the broker side. It allows
// every client.
type Embedded struct {
	srv *mqtt.Server
	mem *memListener
	tcp *listeners.TCP // nil unless asked for
	// attaching counts in-memory connections accepted whose first read has not come: mochi
	// registers a client (a WaitGroup.Add) between the two, and its Close waits on that group,
	// so Close waits for them first (an Add concurrent with the Wait is a race in mochi).
	mu        sync.Mutex
	attaching int
	closing   bool
	attached  chan struct{} // closed when closing and attaching is 0
}

// Per-client limits of the embedded broker. mochi allocates the queue of packets waiting to be
// written to a client up front, one pointer a slot: its default of 8192 slots is 64 KiB per
// client, more than an idle connection through the proxy costs in all. 1024 slots (8 KiB) still
// cover every QoS 1 and 2 window a device is likely to allow; a subscriber that falls 1024
// messages behind loses messages, as mochi drops them when the queue is full (QoS 0 bursts
// faster than the device reads, mostly). The read buffer stays at mochi's 2 KiB; the write
// buffer is only allocated while writes are queued.
const (
	embeddedWritesPending = 1024
	embeddedReadBuffer    = 2 << 10
	embeddedWriteBuffer   = 2 << 10
)

// StartEmbedded starts the broker. It accepts in-memory connections (Dial); with addr set
// ("127.0.0.1:0" picks a free port) it also listens on TCP there, for clients outside the
// process. Broker warnings go to logf.
func StartEmbedded(addr string, logf func(string, ...any)) (*Embedded, error) {
	return StartEmbeddedProfile(addr, nil, logf)
}

// StartEmbeddedProfile starts the broker playing profile p: it grants p's limits in CONNACK and
// enforces them (see profileHook). A nil p, or the spec profile, is mochi's defaults.
func StartEmbeddedProfile(addr string, p *inspect.Profile, logf func(string, ...any)) (*Embedded, error) {
	opts := &mqtt.Options{
		InlineClient:             false,
		Capabilities:             mqtt.NewDefaultServerCapabilities(),
		ClientNetReadBufferSize:  embeddedReadBuffer,
		ClientNetWriteBufferSize: embeddedWriteBuffer,
	}
	opts.Capabilities.MaximumClientWritesPending = embeddedWritesPending
	if logf == nil {
		logf = func(string, ...any) {}
	}
	opts.Logger = slog.New(&logHandler{logf: logf})
	if p != nil && p.Name != "spec" {
		profileCapabilities(opts.Capabilities, p)
	}
	srv := mqtt.New(opts)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if p != nil && p.Name != "spec" {
		if err := srv.AddHook(&profileHook{p: p, requested: map[*mqtt.Client]connectAsk{}}, nil); err != nil {
			return nil, err
		}
	}
	e := &Embedded{srv: srv, mem: newMemListener(embeddedAddr)}
	if err := srv.AddListener(listeners.NewNet(embeddedMem, attachListener{e})); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if addr != "" {
		e.tcp = listeners.NewTCP(listeners.Config{ID: embeddedTCP, Address: addr})
		if err := srv.AddListener(e.tcp); err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return e, nil
}

// Addr is the broker's TCP address, "" when it has none.
func (e *Embedded) Addr() string {
	if e.tcp == nil {
		return ""
	}
	return e.tcp.Address()
}

// Endpoint is what the proxy shows as its upstream: the in-memory address.
func (e *Embedded) Endpoint() Endpoint { return Endpoint{Transport: stream.Memory, Addr: embeddedAddr} }

// Dial opens an in-memory connection to the broker.
func (e *Embedded) Dial(ctx context.Context) (net.Conn, error) { return e.mem.Dial(ctx) }

// Close stops the broker.
func (e *Embedded) Close() error {
	e.mem.Close()
	e.mu.Lock()
	e.closing, e.attached = true, make(chan struct{})
	if e.attaching == 0 {
		close(e.attached)
	}
	e.mu.Unlock()
	select {
	case <-e.attached:
	case <-time.After(2 * time.Second): // a client mochi never read from: close regardless
	}
	// mochi's Close finds each listener's clients with Clients.GetByListener, which takes the
	// clients' read lock and, inside it, again (Len): when a client is being deleted at that
	// moment, its Delete waits for the write lock between the two, and the second read lock
	// waits behind it, for ever. So the listeners are closed here, their clients found with
	// GetAll (one read lock), and mochi's Close finds no listener left (it still waits for the
	// clients to finish).
	disconnect := func(listener string) {
		for _, cl := range e.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
	for _, id := range []string{embeddedMem, embeddedTCP} {
		e.srv.Listeners.Close(id, disconnect)
		e.srv.Listeners.Delete(id)
	}
	return e.srv.Close()
}

// The ids of the embedded broker's listeners.
const (
	embeddedMem = "embedded-mem"
	embeddedTCP = "embedded"
)

// attachListener is the in-memory listener as the broker sees it: it counts each connection
// until the broker first reads from it (see Embedded.attaching).
type attachListener struct{ e *Embedded }

func (l attachListener) Accept() (net.Conn, error) {
	c, err := l.e.mem.Accept()
	if err != nil {
		return nil, err
	}
	e := l.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		c.Close()
		return nil, &net.OpError{Op: "accept", Net: stream.Memory.String(), Addr: e.mem.addr, Err: net.ErrClosed}
	}
	e.attaching++
	return &firstRead{Conn: c, done: e.attach}, nil
}

// attach notes that the broker read from a connection it accepted.
func (e *Embedded) attach() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.attaching--; e.attaching == 0 && e.closing {
		close(e.attached)
	}
}

func (l attachListener) Close() error   { return l.e.mem.Close() }
func (l attachListener) Addr() net.Addr { return l.e.mem.Addr() }

// firstRead calls done at its first Read (or Close).
type firstRead struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *firstRead) Read(p []byte) (int, error) {
	c.once.Do(c.done)
	return c.Conn.Read(p)
}

func (c *firstRead) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

// logHandler passes the broker's warnings and errors to logf.
type logHandler struct {
	logf  func(string, ...any)
	attrs []slog.Attr
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	clientGone := false
	add := func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "error" && errors.Is(err, io.EOF) {
			clientGone = true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if clientGone {
		// A client that closed without DISCONNECT: the proxy's own close record and finding
		// (MQSCOPE-CLOSE-WITHOUT-DISCONNECT) say so already, once per connection, in order.
		return nil
	}
	h.logf("embedded broker: %s", b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{logf: h.logf, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
