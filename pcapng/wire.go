package pcapng

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// WireRecorder records connections as they are on the wire, TLS records and all, together with
// their TLS secrets (the proxy's --record-tls): Wrap taps a connection's bytes below TLS, KeyLog
// collects the secrets of those connections (give it as tls.Config.KeyLogWriter), and Flush
// embeds them in a Decryption Secrets Block, so that the file opens decrypted in Wireshark and
// in mqscope read, and shows the encrypted bytes exactly as the device exchanged them.
type WireRecorder struct {
	path string
	streamFile

	mu     sync.Mutex
	keys   bytes.Buffer
	err    error
	closed bool
}

// NewWireRecorder creates (or truncates) the pcapng file path, mode 0600: it will hold keys.
func NewWireRecorder(path string) (*WireRecorder, error) {
	sf, err := createStreamFile(path)
	if err != nil {
		return nil, err
	}
	return &WireRecorder{path: path, streamFile: sf}, nil
}

// KeyLog returns the writer the TLS secrets of the tapped connections go to (NSS key log
// lines, as tls.Config.KeyLogWriter writes them).
func (r *WireRecorder) KeyLog() io.Writer { return (*keyLog)(r) }

type keyLog WireRecorder

func (k *keyLog) Write(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys.Write(b)
}

// Wrap taps c: what is read from it is recorded as the client's bytes, what is written to it
// as the server's, as a TCP conversation from c's remote address to its local one.
func (r *WireRecorder) Wrap(c net.Conn) net.Conn {
	client, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	server, _ := netip.ParseAddrPort(c.LocalAddr().String())
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil || !client.IsValid() || !server.IsValid() {
		return c
	}
	s, err := r.sw.Open(client, server, time.Now())
	if err != nil {
		r.fail(err)
		return c
	}
	return &wireConn{Conn: c, r: r, s: s}
}

func (r *WireRecorder) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *WireRecorder) record(s *TCPStream, d stream.Dir, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.err != nil {
		return
	}
	if err := s.Write(d, time.Now(), b); err != nil {
		r.fail(err)
	}
}

// Flush writes out the packets, closes the file and embeds the secrets collected.
func (r *WireRecorder) Flush() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.err
	}
	r.closed = true
	if err := r.close(); err != nil {
		r.fail(err)
	}
	keys := bytes.Clone(r.keys.Bytes())
	err := r.err
	r.mu.Unlock()
	if err == nil && len(keys) > 0 {
		err = InjectSecrets(r.path, SecretsTLS, keys)
	}
	if err != nil {
		return fmt.Errorf("--record-tls: %w", err)
	}
	return nil
}

// wireConn is a tapped connection.
type wireConn struct {
	net.Conn
	r    *WireRecorder
	s    *TCPStream
	once sync.Once
}

func (c *wireConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.r.record(c.s, stream.C2S, b[:n])
	}
	return n, err
}

// Write records b before writing it: once written, the client may answer, and its answer must
// not be recorded before what it answers (a PUBLISH before the CONNACK it waited for).
func (c *wireConn) Write(b []byte) (int, error) {
	c.r.record(c.s, stream.S2C, b)
	return c.Conn.Write(b)
}

func (c *wireConn) Close() error {
	c.once.Do(func() {
		c.r.mu.Lock()
		if !c.r.closed && c.r.err == nil {
			if err := c.s.Close(stream.S2C, time.Now()); err != nil {
				c.r.fail(err)
			}
		}
		c.r.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite passes a half-close on to the connection below.
func (c *wireConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// NetConn returns the connection below (the proxy reaches the TCP socket through it).
func (c *wireConn) NetConn() net.Conn { return c.Conn }
