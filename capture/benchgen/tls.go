package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// byteStream is what a connection's MQTT bytes are written to: a TCP conversation, or TLS
// over one.
type byteStream interface {
	Write(d stream.Dir, t time.Time, b []byte) error
	Close(by stream.Dir, t time.Time) error
}

// tlsStream carries a connection's bytes in TLS 1.3 (crypto/tls on both sides, in memory):
// the records are what the TCP conversation records.
type tlsStream struct {
	tcp            *pcapng.TCPStream
	client, server *tls.Conn
	mu             sync.Mutex
	cond           *sync.Cond
	now            time.Time // the time of the bytes being written
	in             [2][]byte // bytes to read, by the direction they travel
	open           bool      // the handshake is done: the peers read nothing more
	err            error     // the recording failed
	done           [2]bool   // the side sending in that direction has closed
}

// serverConfig is a throwaway certificate for every benchmark connection.
func serverConfig() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.bench"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}

// newTLSStream runs a TLS handshake over tcp at time t, the client's secrets going to keylog.
func newTLSStream(tcp *pcapng.TCPStream, t time.Time, server *tls.Config, keylog io.Writer) (*tlsStream, error) {
	ts := &tlsStream{tcp: tcp, now: t}
	ts.cond = sync.NewCond(&ts.mu)
	ts.client = tls.Client(end{ts, stream.C2S}, &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "broker.bench",
		InsecureSkipVerify: true, KeyLogWriter: keylog, NextProtos: []string{"mqtt"}})
	ts.server = tls.Server(end{ts, stream.S2C}, server)
	errs := make(chan error, 1)
	go func() { errs <- ts.server.Handshake() }()
	err := ts.client.Handshake()
	if serr := <-errs; err == nil {
		err = serr
	}
	ts.mu.Lock()
	ts.open, ts.in = true, [2][]byte{}
	if err == nil {
		err = ts.err
	}
	ts.mu.Unlock()
	return ts, err
}

func (ts *tlsStream) Write(d stream.Dir, t time.Time, b []byte) error {
	ts.mu.Lock()
	ts.now = t
	ts.mu.Unlock()
	c := ts.client
	if d == stream.S2C {
		c = ts.server
	}
	if _, err := c.Write(b); err != nil {
		return err
	}
	return ts.err
}

func (ts *tlsStream) Close(by stream.Dir, t time.Time) error {
	ts.mu.Lock()
	ts.now = t
	ts.mu.Unlock()
	ts.client.Close()
	ts.server.Close()
	if ts.err != nil {
		return ts.err
	}
	return ts.tcp.Close(by, t)
}

// end is one side's connection: what it writes goes into the capture (and, during the
// handshake, to the other side).
type end struct {
	ts  *tlsStream
	dir stream.Dir // the direction it writes in
}

func (e end) Write(p []byte) (int, error) {
	ts := e.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.done[e.dir] {
		return 0, net.ErrClosed
	}
	if err := ts.tcp.Write(e.dir, ts.now, p); err != nil && ts.err == nil {
		ts.err = err
	}
	if !ts.open {
		ts.in[e.dir] = append(ts.in[e.dir], p...)
		ts.cond.Broadcast()
	}
	return len(p), nil
}

func (e end) Read(p []byte) (int, error) {
	ts := e.ts
	ts.mu.Lock()
	defer ts.mu.Unlock()
	from := e.dir.Peer()
	for len(ts.in[from]) == 0 {
		if ts.open || ts.done[from] {
			return 0, io.EOF
		}
		ts.cond.Wait()
	}
	n := copy(p, ts.in[from])
	ts.in[from] = ts.in[from][n:]
	return n, nil
}

func (e end) Close() error {
	e.ts.mu.Lock()
	e.ts.done[e.dir] = true
	e.ts.cond.Broadcast()
	e.ts.mu.Unlock()
	return nil
}

func (end) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (end) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (end) SetDeadline(time.Time) error      { return nil }
func (end) SetReadDeadline(time.Time) error  { return nil }
func (end) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
