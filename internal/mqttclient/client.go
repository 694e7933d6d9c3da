// Package mqttclient is a small raw MQTT 5 and 3.1.1 client built on decode, for mqscope's
// probe, replay, demo devices, scenario device and tests: it sends any decode.Packet or any
// bytes (so it can break the standard on purpose), reads frames with a context, and reports
// every byte both ways to a stream.ConnObserver, so that what it does can be inspected as any
// other connection. Each write has a deadline and each frame read a size limit, so that a peer
// that stops reading or announces a huge frame costs a bounded wait and bounded memory.
//
// It keeps no session state of its own: packet identifiers, aliases and acknowledgements are
// the caller's (PacketIDs, Ack and Inbox help a caller that plays a device).
package mqttclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// ErrClosed is returned by Next once the peer has closed the connection (EOF) and every frame
// before the close was read.
var ErrClosed = errors.New("connection closed by the peer")

// DefaultWriteTimeout bounds each Write unless SetWriteTimeout says otherwise: a peer that takes
// none of a packet for that long has stopped reading.
const DefaultWriteTimeout = 10 * time.Second

// DefaultMaxFrame is the largest frame a Client takes from its peer when it announced no
// Maximum Packet Size of its own (and SetMaxFrame was not called): what any of mqscope's uses
// needs, far below the protocol's 256 MB a hostile peer may announce.
const DefaultMaxFrame = 1 << 20

// Client is one MQTT connection seen from the client's side. Send and Write may be called from
// several goroutines while another calls Next: writes are serialised.
type Client struct {
	conn    net.Conn
	version atomic.Uint32 // a decode.Version: set by SendConnect while an Inbox reads
	// out is the direction of what this side writes: C2S for a client, S2C for the server
	// side of a connection (NewServerSide).
	out stream.Dir

	// wmu serialises writes, each observed then written within the write timeout.
	wmu          sync.Mutex
	writeTimeout time.Duration
	// limit is the largest frame taken from the peer and where it comes from; explicit: set by
	// SetMaxFrame, which the Maximum Packet Size of a CONNECT sent no longer changes.
	limit    atomic.Pointer[frameLimit]
	explicit atomic.Bool

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

// frameLimit is the largest frame a Client takes, and why.
type frameLimit struct {
	n   int
	why string
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
	c := &Client{conn: conn, out: out, obs: obs, now: time.Now, writeTimeout: DefaultWriteTimeout,
		chunks: make(chan chunk, 16), framer: decode.NewFramer(DefaultMaxFrame)}
	c.limit.Store(&frameLimit{DefaultMaxFrame, "mqttclient's default"})
	c.SetVersion(decode.V5)
	go c.read()
	return c
}

// SetWriteTimeout bounds each Write: a peer that has not taken the bytes within d has stopped
// reading, and Write returns an error saying so (os.ErrDeadlineExceeded). d <= 0: no bound.
// Call it before writing.
func (c *Client) SetWriteTimeout(d time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeTimeout = d
}

// SetMaxFrame sets the largest frame taken from the peer: NextFrame refuses a larger one as
// soon as its fixed header announces it, without holding its bytes (a *FrameTooLargeError).
// Without it the limit is the Maximum Packet Size this side sent in its CONNECT (or, on the
// server's side, its CONNACK), else DefaultMaxFrame. n <= 0: no limit but the protocol's.
func (c *Client) SetMaxFrame(n int) {
	c.explicit.Store(true)
	c.limit.Store(&frameLimit{max(n, 0), "set by its user"})
}

// MaxFrame returns the largest frame taken from the peer (0: no limit but the protocol's).
func (c *Client) MaxFrame() int { return c.limit.Load().n }

// learnLimit makes the Maximum Packet Size of p, this side's CONNECT or CONNACK, the limit of
// what it takes, unless SetMaxFrame set one.
func (c *Client) learnLimit(p decode.Packet) {
	own := decode.CONNECT
	if c.out == stream.S2C {
		own = decode.CONNACK
	}
	if p.Type() != own || c.explicit.Load() {
		return
	}
	if v, ok := decode.PropertiesOf(p).Int(decode.PropMaximumPacketSize); ok && v > 0 {
		c.limit.Store(&frameLimit{int(v), "the Maximum Packet Size it sent in " + own.String()})
	}
}

// FrameTooLargeError: the peer announced a frame larger than the Client takes (see
// SetMaxFrame). It unwraps to the Framer's *decode.Problem (decode.ErrTooLarge).
type FrameTooLargeError struct {
	Type   decode.Type
	Size   int    // the frame's size, fixed header included, as its header announced it
	Limit  int    // the largest frame the Client takes
	Why    string // where the limit comes from
	Offset int64  // where the frame starts in what the peer sent
	Err    *decode.Problem
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("the peer announced a %s of %d bytes at offset %d of its stream, over the %d-byte limit (%s)",
		e.Type, e.Size, e.Offset, e.Limit, e.Why)
}

func (e *FrameTooLargeError) Unwrap() error { return e.Err }

// Conn returns the connection underneath.
func (c *Client) Conn() net.Conn { return c.conn }

// Version is the protocol version packets are encoded and decoded with.
func (c *Client) Version() decode.Version { return decode.Version(c.version.Load()) }

// SetVersion sets the protocol version packets are encoded and decoded with.
func (c *Client) SetVersion(v decode.Version) { c.version.Store(uint32(v)) }

// read copies what the peer sends into chunks, reporting it to the observer as it arrives.
func (c *Client) read() {
	defer close(c.chunks)
	buf := make([]byte, 16<<10)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			t := c.now()
			b := bytes.Clone(buf[:n]) // what was read, not a 16 KiB buffer per read (a PINGRESP is 2 bytes)
			c.observe(c.out.Peer(), t, b)
			c.chunks <- chunk{b, t}
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

// Send encodes p in the client's protocol version and writes it. A CONNECT (a CONNACK on the
// server's side) with a Maximum Packet Size makes that the limit of what is read (SetMaxFrame).
func (c *Client) Send(p decode.Packet) error {
	if p.Info().Version == 0 {
		p.Info().Version = c.Version()
	}
	b, err := decode.Encode(nil, p)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Type(), err)
	}
	c.learnLimit(p)
	return c.Write(b)
}

// Write sends b as it is: one or several packets, or bytes that are none. A peer that does not
// take them within the write timeout (SetWriteTimeout) is an error wrapping
// os.ErrDeadlineExceeded; the connection is then unusable.
func (c *Client) Write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Observe, then write: the answer cannot be observed before what it answers.
	c.observe(c.out, c.now(), b)
	if c.writeTimeout > 0 {
		if err := c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
			return fmt.Errorf("write to %s: setting its deadline: %w", c.conn.RemoteAddr(), err)
		}
	}
	n, err := c.conn.Write(b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("write to %s: the peer took %d of %d bytes within the %s write timeout: %w",
			c.conn.RemoteAddr(), n, len(b), c.writeTimeout, err)
	}
	return fmt.Errorf("write: %w", err)
}

// NextFrame returns the next whole frame the server sent. It returns ErrClosed after the
// server's EOF, another error when the connection failed (reset, closed by us) or ctx ended
// (ctx.Err(), wrapped) first; a frame whose fixed header is malformed is an error too, and so
// is one larger than the limit (a *FrameTooLargeError, see SetMaxFrame), as soon as its
// header is read. After such an error the stream cannot be read further.
func (c *Client) NextFrame(ctx context.Context) ([]byte, error) {
	lim := c.limit.Load()
	c.framer.SetMax(lim.n)
	for {
		f, err := c.framer.Next()
		if err != nil {
			var p *decode.Problem
			if errors.Is(err, decode.ErrTooLarge) && errors.As(err, &p) {
				h, _, _ := decode.ParseHeader(c.framer.Pending())
				return nil, &FrameTooLargeError{Type: h.Type, Size: h.HeaderLen + h.RemainingLength, Limit: lim.n, Why: lim.why,
					Offset: c.framer.Offset(), Err: p}
			}
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
	return decode.Decode(f, c.Version()), nil
}

// Until reads packets until stop returns true for one (which is the last one returned), the
// server closes (err ErrClosed), the connection fails or ctx ends. It returns every packet read.
func (c *Client) Until(ctx context.Context, stop func(decode.Packet) bool) ([]decode.Packet, error) {
	return c.UntilKept(ctx, stop, nil)
}

// UntilKept is Until returning only the packets keep accepts (nil: all), and the one that
// stopped the reading, last: the others are read and let go, so that a peer that floods the
// connection meanwhile does not fill memory.
func (c *Client) UntilKept(ctx context.Context, stop, keep func(decode.Packet) bool) ([]decode.Packet, error) {
	var ps []decode.Packet
	for {
		p, err := c.Next(ctx)
		if err != nil {
			return ps, err
		}
		stopped := stop != nil && stop(p)
		if keep == nil || keep(p) || stopped {
			ps = append(ps, p)
		}
		if stopped {
			return ps, nil
		}
	}
}

// Connect sends p (SendConnect) and waits for the server's CONNACK. A connection closed before
// the CONNACK, or another packet first, is an error.
func (c *Client) Connect(ctx context.Context, p *decode.Connect) (*decode.Connack, error) {
	if err := c.SendConnect(p); err != nil {
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

// SendConnect sends p, whose version becomes the client's (p.ProtocolLevel; 0 means MQTT 5 and
// is filled in, as the protocol name when empty), for a caller that reads the CONNACK its own
// way (an Inbox).
func (c *Client) SendConnect(p *decode.Connect) error {
	if p.ProtocolLevel == 0 {
		p.ProtocolLevel = byte(decode.V5)
	}
	if p.ProtocolName == "" {
		p.ProtocolName = "MQTT"
		if decode.Version(p.ProtocolLevel) == decode.V31 {
			p.ProtocolName = "MQIsdp"
		}
	}
	c.SetVersion(decode.Version(p.ProtocolLevel))
	p.Version = c.Version()
	return c.Send(p)
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
