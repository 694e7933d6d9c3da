package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/wsconn"
	"github.com/mqscope/mqscope/stream"
)

// Config says what the proxy listens on, where it connects, and who watches.
type Config struct {
	// Listen is where devices connect. Its TLS and WSS forms need ListenTLS.
	Listen    Endpoint
	ListenTLS *tls.Config
	// Upstream is the broker. With Embedded set, an in-process broker is started instead and
	// Upstream is ignored.
	Upstream    Endpoint
	UpstreamTLS *tls.Config // for TLS and WSS upstreams; nil verifies with the system roots
	Embedded    bool
	// EmbeddedProfile, with Embedded, makes the broker grant and enforce a profile's limits.
	EmbeddedProfile *inspect.Profile

	DialTimeout      time.Duration // connecting to the broker; 10s when 0
	HandshakeTimeout time.Duration // the device's TLS or WebSocket handshake; 10s when 0
	// ConnectTimeout bounds the wait for the device's first whole frame (its CONNECT) from
	// accept, as brokers do: a device silent for longer is closed; 10s when 0.
	ConnectTimeout time.Duration
	// MaxConns bounds the connections open at once: more are accepted and closed at once;
	// 0 is no limit.
	MaxConns int
	// MaxBuffered bounds the bytes of unfinished frames all connections hold together (counting
	// at most BufferedFrameMax of each frame: what observers hold of it); over it, the
	// connection holding the most is closed. 64 MiB when 0, no bound when negative.
	MaxBuffered int
	// BufferedFrameMax is the most of one unfinished frame counted against MaxBuffered
	// (inspection holds frames up to its MaxFrame and forwards bigger ones unheld); 1 MiB
	// when 0.
	BufferedFrameMax int
	// HalfCloseTimeout bounds how long the other direction may stay open, silent, after one
	// side has closed its sending half; 60s when 0.
	HalfCloseTimeout time.Duration
	// BufferSize is the read buffer of each direction (pooled: idle TCP connections hold none);
	// 16 KiB when 0.
	BufferSize int
	// TransparentShutdown closes connections on Shutdown without telling MQTT 5 devices
	// (normally they get DISCONNECT 0x8B Server shutting down).
	TransparentShutdown bool

	// Tap, when set, wraps each device connection as accepted, before TLS or WebSocket: it sees
	// the bytes as on the wire (pcapng.WireRecorder, for --record-tls).
	Tap func(net.Conn) net.Conn
	// Observers see every connection's bytes; see Observer.
	Observers []stream.Observer
	// Stages, when set, gives a connection's direction its frame-level pipeline (fault rules);
	// nil or an empty list forwards bytes as they come.
	Stages func(c *stream.Conn, dir stream.Dir, env StageEnv) []Stage
	// StageMaxFrame bounds the frames a direction with stages holds; 1 MiB when 0.
	StageMaxFrame int
	// Metrics counts what is forwarded; New makes one when nil.
	Metrics *Metrics

	// Now and Rand are the clock and the random source of the pipeline (for fault stages and
	// deterministic tests); time.Now (Clock.Now when Clock is set) and a seeded PCG when nil.
	Now  func() time.Time
	Rand *rand.Rand
	// Clock is what stages wait on and send later by (StageEnv); the real clock, read through
	// Now, when nil.
	Clock Clock
	// Logf reports what is not part of any connection (accept errors, broker logs); nil: silent.
	// It is called from the goroutines of many connections at once.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 64 << 20
	}
	if c.BufferedFrameMax <= 0 {
		c.BufferedFrameMax = 1 << 20
	}
	if c.HalfCloseTimeout <= 0 {
		c.HalfCloseTimeout = 60 * time.Second
	}
	if c.BufferSize <= 0 {
		c.BufferSize = 16 << 10
	}
	if c.StageMaxFrame <= 0 {
		c.StageMaxFrame = 1 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
		if c.Clock != nil {
			c.Now = c.Clock.Now
		}
	}
	if c.Clock == nil {
		c.Clock = realClock{now: c.Now}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6d71))
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Server is a running proxy.
type Server struct {
	cfg      Config
	ln       net.Listener
	broker   *Embedded
	upstream Endpoint
	metrics  *Metrics
	bufs     sync.Pool // read buffers of BufferSize bytes

	mu       sync.Mutex
	sessions map[int]*session
	nextID   int
	closing  bool
	wg       sync.WaitGroup
	served   chan struct{}
	stopped  atomic.Bool

	buffered  atomic.Int64 // bytes of unfinished frames held by all connections (see session.held)
	releasing atomic.Int64 // of those, what connections being closed for the budget hold
	enforcing atomic.Bool  // a goroutine is closing connections to bring buffered under the budget
}

// New starts listening (and the embedded broker when asked) but accepts nothing until Serve.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, sessions: map[int]*session{}, metrics: cfg.Metrics, served: make(chan struct{})}
	s.bufs.New = func() any { b := make([]byte, cfg.BufferSize); return &b }
	if cfg.Listen.Secure() && cfg.ListenTLS == nil {
		return nil, errors.New("listening with stream.TLS needs a certificate")
	}
	s.upstream = cfg.Upstream
	if cfg.Embedded {
		b, err := StartEmbeddedProfile("", cfg.EmbeddedProfile, cfg.Logf)
		if err != nil {
			return nil, err
		}
		s.broker = b
		s.upstream = b.Endpoint()
	}
	ln, err := listen(cfg.Listen, cfg.ListenTLS, cfg.HandshakeTimeout, cfg.Tap, cfg.Logf)
	if err != nil {
		if s.broker != nil {
			s.broker.Close()
		}
		return nil, err
	}
	s.ln = ln
	return s, nil
}

// Addr is the address devices connect to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Upstream is the broker the proxy connects to (for the embedded one, its in-memory address:
// Transport Memory).
func (s *Server) Upstream() Endpoint { return s.upstream }

// Metrics returns the proxy's counters.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Run implements stream.Source: it serves until ctx is done, then shuts down (telling MQTT 5
// devices, as Shutdown does, within 10 s), and feeds o besides Config.Observers. Call it instead
// of Serve, not beside it.
func (s *Server) Run(ctx context.Context, o stream.Observer) error {
	s.cfg.Observers = append(s.cfg.Observers, o) // before any session: they read it as they open
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Shutdown(sctx)
	if serr := <-served; err == nil {
		err = serr
	}
	return err
}

// Serve accepts connections until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	defer close(s.served)
	var delay time.Duration
	failures := 0 // accept failures in a row
	full := false // at MaxConns, said so
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.stopped.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and try again, as net/http does,
				// and say so once, not at every try.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if failures == 0 {
					s.cfg.Logf("accept: %v; waiting (up to 1s between tries) until it works again", errText(err))
				}
				failures++
				s.metrics.acceptFailed()
				time.Sleep(delay)
				continue
			}
			return err
		}
		if failures > 0 {
			s.cfg.Logf("accept: working again after %d failed tries", failures)
			failures = 0
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		if s.cfg.MaxConns > 0 && len(s.sessions) >= s.cfg.MaxConns {
			s.mu.Unlock()
			// Counted and said before the close, so that whoever sees the close can see them.
			s.metrics.refused()
			if !full {
				s.cfg.Logf("%d connections open, the most allowed (--max-conns): closing new ones until one ends", s.cfg.MaxConns)
				full = true
			}
			c.Close()
			continue
		}
		if full {
			s.cfg.Logf("below %d connections again: accepting", s.cfg.MaxConns)
			full = false
		}
		s.nextID++
		ss := newSession(s, s.nextID, c)
		s.sessions[ss.info.ID] = ss
		s.wg.Add(1)
		s.mu.Unlock()
		go ss.run()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// overBudget closes the connections holding the most bytes of unfinished frames until the
// others together hold no more than MaxBuffered. It picks them on a goroutine of its own (one
// at a time) and closes them at once, each on a goroutine: what a connection being closed
// holds counts as given back (releasing) until it is.
func (s *Server) overBudget() {
	if !s.enforcing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.enforcing.Store(false)
		for {
			total := s.buffered.Load() - s.releasing.Load()
			if total <= int64(s.cfg.MaxBuffered) {
				return
			}
			var greediest *session
			s.mu.Lock()
			for _, ss := range s.sessions {
				if !ss.stopping.Load() && !ss.cut.Load() && (greediest == nil || ss.held.Load() > greediest.held.Load()) {
					greediest = ss
				}
			}
			s.mu.Unlock()
			if greediest == nil || greediest.held.Load() == 0 {
				return
			}
			// Chosen once (cut: terminate reads no more of its frames), and counted as given
			// back once.
			greediest.cut.Store(true)
			h := greediest.held.Load()
			greediest.releasing.Store(h)
			s.releasing.Add(h)
			why := fmt.Sprintf("closed for holding %d bytes of unfinished frames, the most of any connection, when all held %d, over the proxy's budget of %d (--max-buffered)",
				h, total, s.cfg.MaxBuffered)
			rc := decode.QuotaExceeded
			go greediest.terminate(&rc, "", why)
		}
	}()
}

func (s *Server) remove(ss *session) {
	s.forget(ss)
	s.wg.Done()
}

// forget takes a connection off the list of open ones (Conns, the control API); it may be
// called more than once.
func (s *Server) forget(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss.info.ID)
	s.mu.Unlock()
}

// Shutdown stops accepting, ends every connection (telling MQTT 5 devices with DISCONNECT 0x8B
// Server shutting down unless Config.TransparentShutdown), stops the embedded broker and flushes
// the observers. Connections still open when ctx ends are closed abruptly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	s.stopped.Store(true)
	s.ln.Close()

	var wg sync.WaitGroup
	for _, ss := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.cfg.TransparentShutdown {
				ss.terminate(nil, "", "proxy shutting down")
			} else {
				rc := decode.ServerShuttingDown
				ss.terminate(&rc, "", "proxy shutting down")
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for _, ss := range s.sessions {
			ss.abort()
		}
		s.mu.Unlock()
		<-done
	}
	if s.broker != nil {
		s.broker.Close()
	}
	for _, o := range s.cfg.Observers {
		if f, ok := o.(stream.Flusher); ok {
			if ferr := f.Flush(); ferr != nil && err == nil {
				err = ferr
			}
		}
	}
	return err
}

// ConnStatus is one connection as the control API lists it.
type ConnStatus struct {
	ID       int              `json:"id"`
	Client   string           `json:"client"` // the device's address
	Server   string           `json:"server"` // the broker's address
	Listener stream.Transport `json:"listener"`
	Upstream stream.Transport `json:"upstream"`
	Opened   time.Time        `json:"opened"`
	State    string           `json:"state"` // "connecting", "open", "half-closed", "closing"
	Version  string           `json:"protocol,omitempty"`
	Bytes    [2]uint64        `json:"-"`
	Packets  [2]uint64        `json:"-"`
	Counters struct {
		C2SBytes   uint64 `json:"c2s_bytes"`
		S2CBytes   uint64 `json:"s2c_bytes"`
		C2SPackets uint64 `json:"c2s_packets"`
		S2CPackets uint64 `json:"s2c_packets"`
	} `json:"counters"`
}

// Conns lists the open connections in the order they were accepted.
func (s *Server) Conns() []ConnStatus {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].info.ID < list[j].info.ID })
	out := make([]ConnStatus, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.status())
	}
	return out
}

// ErrNoConn is returned for a connection ID that is not open.
var ErrNoConn = errors.New("no such connection")

// CloseConn ends connection id. With rc set and an MQTT 5 device, the device first gets a
// DISCONNECT with that reason code and reason string (between two frames of the broker's).
func (s *Server) CloseConn(id int, rc *decode.ReasonCode, reasonString string) (Closed, error) {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return Closed{}, fmt.Errorf("connection %d: %w", id, ErrNoConn)
	}
	why := "closed through the control API"
	ss.terminate(rc, reasonString, why)
	return Closed{Disconnect: ss.disconnected.Load(), Done: ss.stoppedWhy()}, nil
}

// ResetConn ends connection id at once with a TCP reset to both sides (a close where a side is
// not TCP), sending no DISCONNECT: as a connection lost on the way would end. Its close record
// says the proxy reset it.
func (s *Server) ResetConn(id int) error {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return fmt.Errorf("connection %d: %w", id, ErrNoConn)
	}
	ss.resetBoth("reset by the proxy (TCP RST to both sides), on request")
	return nil
}

// Closed says what CloseConn did: whether the device was sent a DISCONNECT, and in words all
// that was done (why no DISCONNECT could be sent, to a 3.1.1 device for one: that version has
// no server DISCONNECT).
type Closed struct {
	Disconnect bool   `json:"disconnect_sent"`
	Done       string `json:"done"`
}

// dial opens the upstream connection.
func (s *Server) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	e := s.upstream
	switch e.Transport {
	case stream.Memory:
		if s.broker != nil {
			return s.broker.Dial(ctx)
		}
	case stream.TCP:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", e.Addr)
	case stream.TLS:
		d := tls.Dialer{Config: clientTLS(s.cfg.UpstreamTLS, e)}
		return d.DialContext(ctx, "tcp", e.Addr)
	case stream.WebSocket, stream.WSS:
		d := websocket.Dialer{
			HandshakeTimeout: s.cfg.DialTimeout,
			ReadBufferSize:   s.cfg.BufferSize,
			WriteBufferSize:  s.cfg.BufferSize,
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var nd net.Dialer
				c, err := nd.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &deadlineConn{Conn: c}, nil
			},
		}
		if e.Transport == stream.WSS {
			d.TLSClientConfig = clientTLS(s.cfg.UpstreamTLS, e)
		}
		ws, err := wsconn.Dial(ctx, d, e.String())
		if err != nil {
			return nil, err
		}
		return newWSConn(ws), nil
	}
	return nil, fmt.Errorf("unknown transport %q", e.Transport)
}

// clientTLS returns cfg (or a default) with the server name set from the endpoint if missing.
func clientTLS(cfg *tls.Config, e Endpoint) *tls.Config { return e.ClientTLS(cfg) }
