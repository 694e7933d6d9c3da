// Package mqttclient is a small raw MQTT 5 and 3.1.1 client built on decode, for mqscope's
// probe and replay and for tests: it sends any decode.Packet or any bytes (so it can break the
// standard on purpose), reads frames with a context, and reports every byte both ways to a
// stream.ConnObserver, so that what it does can be inspected as any other connection.
//
// It keeps no session state of its own: packet identifiers, aliases and acknowledgements are
// the caller's.
package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// ErrClosed is returned by Next once the peer has closed the connection (EOF) and every frame
// before the close was read.
var ErrClosed = errors.New("connection closed by the peer")

// Client is one MQTT connection seen from the client's side. Send and Write may be called from
// one goroutine while another calls Next.
type Client struct {
	conn    net.Conn
	version decode.Version
	// out is the direction of what this side writes: C2S for a client, S2C for the server
	// side of a connection (NewServerSide).
	out stream.Dir

	// Observation: every byte written (C2S) and read (S2C) goes to obs, in the order it was
	// sent or received; mu serialises the calls.
	mu       sync.Mutex
	obs      stream.ConnObserver
	observed bool // obs.Close was called
	now      func() time.Time

	chunks chan chunk     // filled by the reader goroutine, closed after its last chunk
	framer *decode.Framer // the bytes read so far, cut into frames
	rerr   error          // why the reader stopped, once chunks is closed and drained

	closing sync.Once
	// readDone: the reader stopped (rerr says why); closedByUs: Close came first. Both under mu.
	readDone, closedByUs bool
}

type chunk struct {
	b []byte
	t time.Time
}

// New returns a Client on an open connection, speaking MQTT 5 until Connect says otherwise
// (or SetVersion). obs, when not nil, gets the connection's bytes and end.
func New(conn net.Conn, obs stream.ConnObserver) *Client { return newSide(conn, obs, stream.C2S) }

// NewServerSide returns the server's side of an accepted connection: it writes what a broker
// sends and reads what the client sends (the observer sees them so), for replaying a broker.
func NewServerSide(conn net.Conn, obs stream.ConnObserver) *Client {
	return newSide(conn, obs, stream.S2C)
}

func newSide(conn net.Conn, obs stream.ConnObserver, out stream.Dir) *Client {
	c := &Client{conn: conn, version: decode.V5, out: out, obs: obs, now: time.Now,
		chunks: make(chan chunk, 16), framer: decode.NewFramer(0)}
	go c.read()
	return c
}

// Conn returns the connection underneath.
func (c *Client) Conn() net.Conn { return c.conn }

// Version is the protocol version packets are encoded and decoded with.
func (c *Client) Version() decode.Version { return c.version }

// SetVersion sets the protocol version packets are encoded and decoded with.
func (c *Client) SetVersion(v decode.Version) { c.version = v }

// read copies what the peer sends into chunks, reporting it to the observer as it arrives.
func (c *Client) read() {
	defer close(c.chunks)
	for {
		buf := make([]byte, 16<<10)
		n, err := c.conn.Read(buf)
		if n > 0 {
			t := c.now()
			c.observe(c.out.Peer(), t, buf[:n])
			c.chunks <- chunk{buf[:n], t}
		}
		if err != nil {
			c.mu.Lock()
			c.rerr, c.readDone = err, true
			c.mu.Unlock()
			return
		}
	}
}

func (c *Client) observe(dir stream.Dir, t time.Time, b []byte) {
	if c.obs == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.observed {
		c.obs.Data(dir, t, b)
	}
}

// Send encodes p in the client's protocol version and writes it.
func (c *Client) Send(p decode.Packet) error {
	if p.Info().Version == 0 {
		p.Info().Version = c.version
	}
	b, err := decode.Encode(nil, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Type(), err)
	}
	return c.Write(b)
}

// Write sends b as it is: one or several packets, or bytes that are none.
func (c *Client) Write(b []byte) error {
	// Observe, then write: the answer cannot be observed before what it answers.
	c.observe(c.out, c.now(), b)
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// NextFrame returns the next whole frame the server sent. It returns ErrClosed after the
// server's EOF, another error when the connection failed (reset, closed by us) or ctx ended
// (ctx.Err(), wrapped) first; a frame whose fixed header is malformed is an error too.
func (c *Client) NextFrame(ctx context.Context) ([]byte, error) {
	for {
		f, err := c.framer.Next()
		if err != nil {
			return nil, fmt.Errorf("reading from the peer: %w", err)
		}
		if f != nil {
			return f, nil
		}
		select {
		case ch, ok := <-c.chunks:
			if !ok {
				if n := c.framer.Buffered(); n > 0 {
					return nil, fmt.Errorf("the connection ended inside a packet (%d bytes of it read): %w", n, c.endErr())
				}
				return nil, c.endErr()
			}
			c.framer.Write(ch.b)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the peer: %w", ctx.Err())
		}
	}
}

// endErr is why reading ended: ErrClosed on EOF.
func (c *Client) endErr() error {
	if errors.Is(c.rerr, io.EOF) {
		return ErrClosed
	}
	return fmt.Errorf("read: %w", c.rerr)
}

// Next returns the next packet the server sent, decoded in the client's version (see
// NextFrame for errors). A packet with problems is returned with them (Info().Problems).
func (c *Client) Next(ctx context.Context) (decode.Packet, error) {
	f, err := c.NextFrame(ctx)
	if err != nil {
		return nil, err
	}
	return decode.Decode(f, c.version), nil
}

// Until reads packets until stop returns true for one (which is the last one returned), the
// server closes (err ErrClosed), the connection fails or ctx ends. It returns every packet read.
func (c *Client) Until(ctx context.Context, stop func(decode.Packet) bool) ([]decode.Packet, error) {
	var ps []decode.Packet
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
		if stop != nil && stop(p) {
			return ps, nil
		}
	}
}

// Connect sends p and waits for the server's CONNACK, whose version becomes the client's
// (p.ProtocolLevel; 0 means MQTT 5 and is filled in). A connection closed before the CONNACK,
// or another packet first, is an error.
func (c *Client) Connect(ctx context.Context, p *decode.Connect) (*decode.Connack, error) {
	if p.ProtocolLevel == 0 {
		p.ProtocolLevel = byte(decode.V5)
	}
	if p.ProtocolName == "" {
		p.ProtocolName = "MQTT"
		if decode.Version(p.ProtocolLevel) == decode.V31 {
			p.ProtocolName = "MQIsdp"
		}
	}
	c.version = decode.Version(p.ProtocolLevel)
	p.Version = c.version
	if err := c.Send(p); err != nil {
		return nil, err
	}
	q, err := c.Next(ctx)
	if err != nil {
		return nil, fmt.Errorf("no CONNACK: %w", err)
	}
	ack, ok := q.(*decode.Connack)
	if !ok {
		return nil, fmt.Errorf("the server answered CONNECT with %s, not CONNACK", q.Type())
	}
	return ack, nil
}

// Close closes the connection and reports its end to the observer: by the client with a FIN
// unless the server ended it first.
func (c *Client) Close() error {
	var err error
	c.closing.Do(func() {
		c.mu.Lock()
		c.closedByUs = !c.readDone
		c.mu.Unlock()
		err = c.conn.Close()
		for range c.chunks { // the reader stops on the closed connection
		}
		c.end()
	})
	return err
}

// end tells the observer how the connection ended, once.
func (c *Client) end() {
	if c.obs == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.observed {
		return
	}
	c.observed = true
	us, peer := c.out.Sender(), c.out.Peer().Sender()
	e := stream.End{By: us, How: stream.FIN}
	switch {
	case c.closedByUs:
	case errors.Is(c.rerr, io.EOF):
		e.By = peer
	default:
		e = stream.End{By: peer, How: stream.RST, Detail: c.rerr.Error()}
	}
	c.obs.Close(c.now(), e)
}
