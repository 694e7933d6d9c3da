package mqttclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/stream"
)

// DialOptions say how to reach a server.
type DialOptions struct {
	// TLS configures tls:// and wss:// endpoints; nil verifies the server with the system
	// roots. Its ServerName defaults to the endpoint's host.
	TLS *tls.Config
	// Timeout bounds the connection and its TLS and WebSocket handshakes; 10 s when 0.
	Timeout time.Duration
	// Dial, when set, opens the connection instead (an in-process broker); the endpoint is then
	// only a name.
	Dial func(ctx context.Context) (net.Conn, error)
}

// Dial connects to e (TCP, TLS, WebSocket or WebSocket over TLS) and returns a Client on the
// connection; obs, when not nil, observes it (see New).
func Dial(ctx context.Context, e stream.Endpoint, o DialOptions, obs stream.ConnObserver) (*Client, error) {
	conn, err := DialConn(ctx, e, o)
	if err != nil {
		return nil, err
	}
	return New(conn, obs), nil
}

// DialConn opens the transport to e and nothing more.
func DialConn(ctx context.Context, e stream.Endpoint, o DialOptions) (net.Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if o.Dial != nil {
		return o.Dial(ctx)
	}
	var conn net.Conn
	var err error
	switch e.Transport {
	case stream.TCP:
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", e.Addr)
	case stream.TLS:
		d := tls.Dialer{Config: e.ClientTLS(o.TLS)}
		conn, err = d.DialContext(ctx, "tcp", e.Addr)
	case stream.WebSocket, stream.WSS:
		conn, err = dialWS(ctx, e, o)
	default:
		return nil, fmt.Errorf("dial %s: transport %s cannot be dialled", e, e.Transport)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", e, err)
	}
	return conn, nil
}

func dialWS(ctx context.Context, e stream.Endpoint, o DialOptions) (net.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: o.Timeout}
	if e.Transport == stream.WSS {
		d.TLSClientConfig = e.ClientTLS(o.TLS)
	}
	ws, resp, err := d.DialContext(ctx, e.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: %w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	return &wsConn{Conn: ws.NetConn(), ws: ws}, nil
}

// wsConn carries the MQTT byte stream in binary WebSocket messages (MQTT 5.0 section 6): each
// Write is one message, reads return message data whatever the framing. Only one goroutine
// reads (the Client's reader), and writes are serialised by the caller.
type wsConn struct {
	net.Conn // the connection underneath: addresses, deadlines
	ws       *websocket.Conn
	r        io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				// 1006 is what the library says when the TCP connection ended (EOF) without a
				// close frame: the peer closed, as with a close frame.
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure) {
					return 0, io.EOF
				}
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, os.ErrDeadlineExceeded) {
			err = deadlineErr{err}
		}
		return 0, err
	}
	return len(p), nil
}

// deadlineErr is a write timeout the library passed on as its own error, without the
// connection's: errors.Is(err, os.ErrDeadlineExceeded) holds again, as on a plain connection.
type deadlineErr struct{ error }

func (e deadlineErr) Is(target error) bool { return target == os.ErrDeadlineExceeded }
func (e deadlineErr) Unwrap() error        { return e.error }

func (c *wsConn) Close() error { return c.ws.Close() }

// SetWriteDeadline goes to the library, which sets its own deadline on the connection beneath
// before every frame it writes. The Client sets it from the goroutine that then writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
