package proxy

import (
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/internal/wsconn"
	"github.com/mqscope/mqscope/stream"
)

// wsConn carries an MQTT byte stream in WebSocket binary messages (wsconn.Conn).
//
// Write deadlines go to the TCP connection underneath (a deadlineConn), never to the library,
// whose write deadline is a plain field read by a write in progress: setting it from another
// goroutine (the proxy does, to unblock a stuck write at shutdown) was a data race.
type wsConn struct {
	*wsconn.Conn
	dc *deadlineConn
}

func newWSConn(ws *websocket.Conn) *wsConn {
	c := &wsConn{Conn: wsconn.New(ws)}
	for nc := ws.NetConn(); nc != nil; {
		if dc, ok := nc.(*deadlineConn); ok {
			c.dc = dc
			break
		}
		u, ok := nc.(interface{ NetConn() net.Conn }) // *tls.Conn
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	return c
}

// deadlineConn is the TCP connection under a WebSocket. The library sets its own write deadline
// before every frame; a deadline set by the proxy overrides it until the proxy clears it.
type deadlineConn struct {
	net.Conn
	mu     sync.Mutex
	forced time.Time
}

// NetConn is the connection beneath, for a reset (linger 0) of its TCP connection.
func (c *deadlineConn) NetConn() net.Conn { return c.Conn }

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.forced.IsZero() {
		t = c.forced
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// force sets the write deadline the library cannot change.
func (c *deadlineConn) force(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forced = t
	return c.Conn.SetWriteDeadline(t)
}

// deadlineListener wraps each accepted connection in a deadlineConn.
type deadlineListener struct{ net.Listener }

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c}, nil
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	if c.dc == nil {
		// A connection the proxy did not make (tests' clients): the library's deadline, which
		// must not be set while another goroutine writes.
		return c.Conn.SetWriteDeadline(t)
	}
	return c.dc.force(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// logfWriter turns the HTTP server's log lines (failed TLS handshakes...) into logf calls.
type logfWriter func(string, ...any)

func (f logfWriter) Write(b []byte) (int, error) {
	f("websocket listener: %s", strings.TrimSpace(string(b)))
	return len(b), nil
}

// wsListener accepts WebSocket connections on one path and hands them out as net.Conns.
type wsListener struct {
	ln    net.Listener
	path  string
	srv   *http.Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	up    websocket.Upgrader
}

func newWSListener(ln net.Listener, path string, handshake time.Duration, bufSize int, logf func(string, ...any)) *wsListener {
	l := &wsListener{ln: ln, path: path, conns: make(chan net.Conn), done: make(chan struct{})}
	l.up = websocket.Upgrader{
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: handshake,
		ReadBufferSize:   bufSize,
		WriteBufferSize:  bufSize,
		CheckOrigin:      func(*http.Request) bool { return true },
	}
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: handshake, ErrorLog: log.New(logfWriter(logf), "", 0)}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("websocket listener: %v", err)
		}
		l.Close()
	}()
	return l
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.path != "" && l.path != "/" && r.URL.Path != l.path {
		http.Error(w, "mqscope: MQTT over WebSocket is at "+l.path, http.StatusNotFound)
		return
	}
	ws, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := newWSConn(ws)
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *wsListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.srv.Close()
	})
	return nil
}

func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// listen opens the device-facing listener.
func listen(e Endpoint, cfg *tls.Config, handshake time.Duration, tap func(net.Conn) net.Conn, logf func(string, ...any)) (net.Listener, error) {
	tl, err := net.Listen("tcp", e.Addr)
	if err != nil {
		return nil, err
	}
	var ln net.Listener = tl
	if tap != nil {
		ln = tapListener{ln, tap}
	}
	if e.Transport == stream.WebSocket || e.Transport == stream.WSS {
		ln = deadlineListener{ln}
	}
	switch e.Transport {
	case stream.TLS:
		return tls.NewListener(ln, cfg), nil
	case stream.WebSocket:
		return newWSListener(ln, e.Path, handshake, 4096, logf), nil
	case stream.WSS:
		return newWSListener(tls.NewListener(ln, cfg), e.Path, handshake, 4096, logf), nil
	}
	return ln, nil
}

// tapListener gives each accepted connection to a tap (Config.Tap) before TLS or WebSocket.
type tapListener struct {
	net.Listener
	tap func(net.Conn) net.Conn
}

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.tap(c), nil
}
