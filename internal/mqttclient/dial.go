package mqttclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mqscope/mqscope/internal/wsconn"
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
	d := websocket.Dialer{HandshakeTimeout: o.Timeout}
	if e.Transport == stream.WSS {
		d.TLSClientConfig = e.ClientTLS(o.TLS)
	}
	ws, err := wsconn.Dial(ctx, d, e.String())
	if err != nil {
		return nil, err
	}
	return wsconn.New(ws), nil
}
