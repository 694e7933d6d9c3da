// Package wsconn carries an MQTT byte stream in binary WebSocket messages (MQTT 5.0 section 6),
// as a net.Conn: the proxy's WebSocket listeners and upstream connections and mqttclient's
// WebSocket dialer use it, so that the stream is read one way everywhere.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is a WebSocket connection read and written as a byte stream: reads return the data of
// binary messages whatever their framing (a text message is an error, ErrTextMessage), each
// Write sends one binary message. Pings are answered by
// the library; a close frame, or the end of the connection without one, reads as EOF.
//
// Only one goroutine reads; writes are serialised by the caller. Deadlines go to the library
// (SetWriteDeadline sets the deadline the library gives the connection beneath before each
// frame it writes): set them from the goroutine that reads or writes next.
type Conn struct {
	ws  *websocket.Conn
	r   io.Reader // the message being read, nil between messages
	err error     // ErrTextMessage once one came: the stream has no valid rest
}

// Dial opens an MQTT over WebSocket connection to url (ws:// or wss://) with d, which says the
// timeouts, TLS and buffers: it asks for the "mqtt" subprotocol, and a refused handshake's error
// says the HTTP status the server answered.
func Dial(ctx context.Context, d websocket.Dialer, url string) (*websocket.Conn, error) {
	d.Subprotocols = []string{"mqtt"}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: %w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	return ws, nil
}

// ErrTextMessage is Read's error for a text message: MQTT travels in binary messages only, and
// the receiver of any other data message closes the connection [MQTT-6.0.0-1].
var ErrTextMessage = errors.New("MQTT-6.0.0-1: a WebSocket text message, where MQTT packets travel in binary messages only")

// New returns the byte stream of ws.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws} }

// WS returns the WebSocket connection.
func (c *Conn) WS() *websocket.Conn { return c.ws }

func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err == nil && mt != websocket.BinaryMessage {
				// The standard closes the connection here (MQTT-6.0.0-1); the bytes are not
				// read as MQTT, nor the messages after them.
				c.err = ErrTextMessage
				return 0, c.err
			}
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					switch ce.Code {
					// 1006 is what the library says when the TCP connection ended (EOF) without
					// a close frame: the peer closed, as with one.
					case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure:
						return 0, io.EOF
					}
				}
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *Conn) Write(p []byte) (int, error) {
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

// CloseWrite sends a close frame: the WebSocket way of saying "no more from me".
func (c *Conn) CloseWrite() error {
	return c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

func (c *Conn) Close() error                       { return c.ws.Close() }
func (c *Conn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// NetConn is the connection beneath (TCP, or TLS over TCP).
func (c *Conn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
