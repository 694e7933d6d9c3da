package pcapng

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// Recorder is a stream.Observer that writes every connection's MQTT byte streams as they were
// delivered (for the proxy: as forwarded, decrypted, without WebSocket framing) to a pcapng
// file, as TCP conversations between client and server with the real timestamps. Wireshark
// and tshark decode it (on a port other than 1883, tell them: -d tcp.port==PORT,mqtt).
type Recorder struct {
	mu sync.Mutex
	streamFile
	// Server stands for a connection's server when its address is not known.
	server netip.AddrPort
	logf   func(string, ...any)
	err    error
	closed bool
}

// NewRecorder creates (or truncates) the pcapng file path, mode 0600 (it may hold passwords).
// server stands for the server of connections whose server address is unknown; logf (nil:
// silent) reports the first write error, after which recording stops.
func NewRecorder(path string, server netip.AddrPort, logf func(string, ...any)) (*Recorder, error) {
	sf, err := createStreamFile(path)
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !server.IsValid() {
		server = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1883)
	}
	return &Recorder{streamFile: sf, server: server, logf: logf}, nil
}

// Open implements stream.Observer.
func (r *Recorder) Open(c *stream.Conn) stream.ConnObserver {
	client, server := c.Client, c.Server
	if !client.IsValid() {
		client = netip.MustParseAddrPort("127.0.0.1:1")
	}
	if !server.IsValid() {
		server = r.server
	}
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	if client.Addr().Is4() != server.Addr().Is4() {
		// The pcapng conversation needs one family: show the client in the server's.
		if server.Addr().Is4() {
			client = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), client.Port())
		} else {
			client = netip.AddrPortFrom(netip.IPv6Loopback(), client.Port())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return nil
	}
	s, err := r.sw.Open(client, server, c.Start)
	if err != nil {
		r.fail(err)
		return nil
	}
	return &recConn{r: r, s: s}
}

func (r *Recorder) fail(err error) {
	if r.err == nil {
		r.err = err
		r.logf("--record: %v; recording stopped", err)
	}
}

// Flush writes out what is buffered and closes the file.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	r.closed = true
	if err := r.close(); err != nil {
		r.fail(err)
	}
	if r.err != nil {
		return fmt.Errorf("--record: %w", r.err)
	}
	return nil
}

type recConn struct {
	r      *Recorder
	s      *TCPStream
	alters [2]stream.AlterQueue // guarded by r.mu
}

// Alter implements stream.Alterer: the first frame a fault altered or sent gets a comment
// saying what the fault did (a fault that dropped its frame leaves none).
func (o *recConn) Alter(d stream.Dir, _ time.Time, a *stream.Alteration) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	o.alters[d&1].Add(a)
}

// faultComment is the comment on a frame a fault altered or sent.
func faultComment(a *stream.Alteration) string {
	s := "mqscope fault " + a.Rule + ": " + a.Did
	if a.Used != "" {
		s += "; " + a.Used
	}
	return s
}

func (o *recConn) Data(d stream.Dir, t time.Time, b []byte) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	if o.r.closed || o.r.err != nil {
		return
	}
	if q := &o.alters[d&1]; q.Len() > 0 {
		if a, i, first, ok := q.Piece(b); ok && first && i == a.Kept {
			o.s.Comment(d, faultComment(a))
		}
	}
	if err := o.s.Write(d, t, b); err != nil {
		o.r.fail(err)
	}
}

// Gap implements stream.ConnObserver: lost bytes are not recorded.
func (o *recConn) Gap(stream.Dir, time.Time, int) {}

// Close ends the conversation as the connection ended: a reset from the side that reset it,
// otherwise a FIN exchange begun by the side that closed (the server's when unknown).
func (o *recConn) Close(t time.Time, e stream.End) {
	o.r.mu.Lock()
	defer o.r.mu.Unlock()
	if o.r.closed || o.r.err != nil {
		return
	}
	d := stream.S2C
	if e.By == stream.Client {
		d = stream.C2S
	}
	var err error
	if e.Abrupt() {
		err = o.s.Reset(d, t)
	} else {
		err = o.s.Close(d, t)
	}
	if err != nil {
		o.r.fail(err)
	}
}
