package tlsdecrypt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// certificate returns a self-signed certificate for "broker.test" with an ECDSA or RSA key.
func certificate(t testing.TB, useRSA bool) tls.Certificate {
	t.Helper()
	var key any
	var pub any
	if useRSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "broker.test"},
		DNSNames:     []string{"broker.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var (
	certOnce           sync.Once
	ecdsaCert, rsaCert tls.Certificate
)

func certs(t testing.TB) (ec, rs tls.Certificate) {
	certOnce.Do(func() {
		ecdsaCert, rsaCert = certificate(t, false), certificate(t, true)
	})
	return ecdsaCert, rsaCert
}

// tap copies what is written to a connection.
type tap struct {
	net.Conn
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (c tap) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.w.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// session is a TLS connection made with crypto/tls: the bytes each side sent on the wire,
// the application data each side wrote, and the key log.
type session struct {
	wire   [2][]byte
	plain  [2][]byte
	keylog string
	state  tls.ConnectionState
}

// runSession connects a crypto/tls client and server over a pipe; the client writes msgs,
// the server answers each with its reversal.
func runSession(t testing.TB, client, server *tls.Config, msgs ...[]byte) *session {
	t.Helper()
	var kl bytes.Buffer
	client = client.Clone()
	client.KeyLogWriter = &kl
	client.ServerName = "broker.test"
	client.InsecureSkipVerify = true
	client.NextProtos = []string{"mqtt"}
	server = server.Clone()
	server.NextProtos = []string{"mqtt"}
	a, b := tcpPair(t)
	var mu sync.Mutex
	var wire [2]bytes.Buffer
	cc := tls.Client(tap{a, &mu, &wire[0]}, client)
	sc := tls.Server(tap{b, &mu, &wire[1]}, server)
	s := &session{}
	done := make(chan error, 1)
	go func() {
		defer sc.Close()
		for _, m := range msgs {
			buf := make([]byte, len(m))
			if _, err := io.ReadFull(sc, buf); err != nil {
				done <- err
				return
			}
			r := reverse(buf)
			if _, err := sc.Write(r); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for _, m := range msgs {
		if _, err := cc.Write(m); err != nil {
			t.Fatal(err)
		}
		s.plain[0] = append(s.plain[0], m...)
		back := make([]byte, len(m))
		if _, err := io.ReadFull(cc, back); err != nil {
			t.Fatal(err)
		}
		s.plain[1] = append(s.plain[1], back...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.state = cc.ConnectionState()
	cc.Close()
	mu.Lock()
	s.wire = [2][]byte{wire[0].Bytes(), wire[1].Bytes()}
	mu.Unlock()
	s.keylog = kl.String()
	return s
}

// tcpPair returns both ends of a TCP connection on loopback (a pipe has no buffer: closing
// TLS over it waits for the peer to read the alert).
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func reverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return r
}

// sink collects a Conn's output.
type sink struct {
	plain  [2][]byte
	pieces [2][][]byte // each Plaintext call's bytes
	lost   [2]int
	calls  [2]int // Lost calls
}

func (s *sink) Plaintext(d Dir, b []byte) {
	s.plain[d] = append(s.plain[d], b...)
	s.pieces[d] = append(s.pieces[d], bytes.Clone(b))
}
func (s *sink) Lost(d Dir, n int) { s.lost[d] += n; s.calls[d]++ }

func keysOf(t testing.TB, keylog string) *Keys {
	t.Helper()
	k := NewKeys()
	if _, err := k.Read(strings.NewReader(keylog), "keylog"); err != nil {
		t.Fatal(err)
	}
	return k
}

// feed gives a Conn the wire bytes of both directions in random pieces, interleaved.
func feed(c *Conn, wire [2][]byte, rng *mrand.Rand) {
	for len(wire[0])+len(wire[1]) > 0 {
		d := Dir(rng.IntN(2))
		if len(wire[d]) == 0 {
			d ^= 1
		}
		n := min(1+rng.IntN(3000), len(wire[d]))
		c.Data(d, wire[d][:n])
		wire[d] = wire[d][n:]
	}
	c.Close()
}

func messages() [][]byte {
	return [][]byte{
		[]byte("\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc"),
		bytes.Repeat([]byte("0123456789abcdef"), 3000), // several records
		[]byte("last"),
	}
}

func TestDecryptGoTLS(t *testing.T) {
	ec, rs := certs(t)
	cases := []struct {
		name    string
		version uint16
		suite   uint16 // TLS 1.2 only: crypto/tls picks the TLS 1.3 suite itself
		rsa     bool
	}{
		{"TLS 1.3", tls.VersionTLS13, 0, false},
		{"ECDHE-ECDSA AES-128-GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false},
		{"ECDHE-ECDSA AES-256-GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false},
		{"ECDHE-RSA AES-128-GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, true},
		{"ECDHE-ECDSA ChaCha20", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, false},
		{"ECDHE-RSA ChaCha20", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{"ECDHE-ECDSA AES-128-CBC-SHA", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"ECDHE-RSA AES-256-CBC-SHA", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, true},
		{"ECDHE-RSA AES-128-CBC-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, true},
		{"ECDHE-ECDSA AES-128-CBC-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := ec
			if tc.rsa {
				cert = rs
			}
			cfg := &tls.Config{MinVersion: tc.version, MaxVersion: tc.version, Certificates: []tls.Certificate{cert}}
			if tc.suite != 0 {
				cfg.CipherSuites = []uint16{tc.suite}
			}
			s := runSession(t, cfg, cfg, messages()...)
			for seed := range uint64(4) {
				var out sink
				c := NewConn(keysOf(t, s.keylog), &out)
				feed(c, s.wire, mrand.New(mrand.NewPCG(seed, 1)))
				st := c.Status()
				if st.Err != nil {
					t.Fatalf("seed %d: %v", seed, st.Err)
				}
				if st.Version != s.state.Version || st.Suite != s.state.CipherSuite {
					t.Errorf("version %s suite %s, want %s %s", VersionName(st.Version), SuiteName(st.Suite),
						VersionName(s.state.Version), SuiteName(s.state.CipherSuite))
				}
				if st.ServerName != "broker.test" || st.Protocol != "mqtt" || len(st.ALPN) != 1 {
					t.Errorf("server name %q, protocol %q, ALPN %q", st.ServerName, st.Protocol, st.ALPN)
				}
				for d := range 2 {
					if !bytes.Equal(out.plain[d], s.plain[d]) {
						t.Errorf("seed %d: %s: decrypted %d bytes, want the %d sent", seed, Dir(d).sender(), len(out.plain[d]), len(s.plain[d]))
					}
					if out.lost[d] != 0 {
						t.Errorf("%s: lost %d", Dir(d).sender(), out.lost[d])
					}
				}
			}
			if testing.Verbose() {
				t.Logf("%s %s", VersionName(s.state.Version), SuiteName(s.state.CipherSuite))
			}
		})
	}
}

func TestNoKey(t *testing.T) {
	ec, _ := certs(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := &tls.Config{MinVersion: v, MaxVersion: v, Certificates: []tls.Certificate{ec}}
		s := runSession(t, cfg, cfg, messages()...)
		var out sink
		// Another session's keys.
		other := runSession(t, cfg, cfg, messages()[0])
		c := NewConn(keysOf(t, other.keylog), &out)
		feed(c, s.wire, mrand.New(mrand.NewPCG(1, 2)))
		var e *Error
		if err := c.Status().Err; !errors.Is(err, ErrNoKey) || !errors.As(err, &e) {
			t.Fatalf("%s: err %v, want ErrNoKey", VersionName(v), err)
		}
		if want := c.Status().Random.String(); !strings.Contains(e.Error(), want) {
			t.Errorf("%q does not name the client random %s", e, want)
		}
		if len(out.plain[0])+len(out.plain[1]) != 0 {
			t.Errorf("decrypted without a key")
		}
	}
}

func TestWrongKey(t *testing.T) {
	ec, _ := certs(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := &tls.Config{MinVersion: v, MaxVersion: v, Certificates: []tls.Certificate{ec}}
		s := runSession(t, cfg, cfg, messages()...)
		// The right labels and random, another secret.
		var kl strings.Builder
		for _, l := range strings.Split(strings.TrimSpace(s.keylog), "\n") {
			f := strings.Fields(l)
			flip := "0"
			if f[2][0] == '0' {
				flip = "1"
			}
			kl.WriteString(f[0] + " " + f[1] + " " + flip + f[2][1:] + "\n")
		}
		var out sink
		c := NewConn(keysOf(t, kl.String()), &out)
		feed(c, s.wire, mrand.New(mrand.NewPCG(1, 2)))
		if err := c.Status().Err; !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%s: err %v, want ErrWrongKey", VersionName(v), err)
		}
	}
}

// TestHelloRetry: a TLS 1.3 server that asks for another key share (HelloRetryRequest) gets a
// second ClientHello; the ServerHello after it sets the keys.
func TestHelloRetry(t *testing.T) {
	ec, _ := certs(t)
	server := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ec}, CurvePreferences: []tls.CurveID{tls.CurveP384}}
	client := &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.CurveP256, tls.CurveP384}}
	s := runSession(t, client, server, messages()...)
	if !bytes.Contains(s.wire[1], helloRetry[:]) {
		t.Fatal("the server sent no HelloRetryRequest")
	}
	var out sink
	c := NewConn(keysOf(t, s.keylog), &out)
	feed(c, s.wire, mrand.New(mrand.NewPCG(3, 4)))
	if err := c.Status().Err; err != nil || !bytes.Equal(out.plain[0], s.plain[0]) || !bytes.Equal(out.plain[1], s.plain[1]) {
		t.Errorf("err %v; decrypted %d and %d bytes, want %d and %d", err, len(out.plain[0]), len(out.plain[1]), len(s.plain[0]), len(s.plain[1]))
	}
}

// TestKeyLog reads key logs: comments, other labels and a last line without its newline are
// fine; a malformed line is an error naming it; a LogFile takes lines as they are written.
func TestKeyLog(t *testing.T) {
	r := strings.Repeat("ab", 32)
	good := "# a comment\n\nCLIENT_RANDOM " + r + " " + strings.Repeat("01", 48) + "\n" +
		"EXPORTER_SECRET " + r + " " + strings.Repeat("02", 32) + "\n" +
		"CLIENT_TRAFFIC_SECRET_0 " + r + " " + strings.Repeat("03", 32)
	k := NewKeys()
	st, err := k.Read(strings.NewReader(good), "good")
	if err != nil || st.Secrets != 2 || st.Ignored != 1 || k.Len() != 1 {
		t.Errorf("read %+v, %d randoms: %v", st, k.Len(), err)
	}
	for _, tc := range []struct{ line, want string }{
		{"CLIENT_RANDOM " + r, "bad: line 2: want LABEL CLIENT_RANDOM SECRET, got 2 fields"},
		{"CLIENT_RANDOM abcd " + strings.Repeat("01", 48), "bad: line 2: CLIENT_RANDOM: the client random is not 32 bytes of hex"},
		{"CLIENT_RANDOM " + r + " " + strings.Repeat("01", 47), "bad: line 2: CLIENT_RANDOM: the master secret has 47 bytes, want 48"},
		{"SERVER_TRAFFIC_SECRET_0 " + r + " zz", "bad: line 2: SERVER_TRAFFIC_SECRET_0: the secret is not hex"},
	} {
		_, err := NewKeys().Read(strings.NewReader("# ok\n"+tc.line+"\n"), "bad")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
	}
	// A file written while it is read: a line without its newline waits.
	name := filepath.Join(t.TempDir(), "keys.log")
	if err := os.WriteFile(name, []byte(good[:len(good)-10]), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, k := NewLogFile(name), NewKeys()
	if st, err := lf.Update(k); err != nil || st.Secrets != 1 {
		t.Fatalf("first update: %+v %v", st, err)
	}
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(good[len(good)-10:] + "\n")
	f.Close()
	if st, err := lf.Update(k); err != nil || st.Secrets != 1 {
		t.Fatalf("second update: %+v %v", st, err)
	}
	var rr Random
	copy(rr[:], bytes.Repeat([]byte{0xab}, 32))
	if k.lookup(rr, slot(labelClientTraffic)) == nil || k.lookup(rr, slot(labelMaster)) == nil {
		t.Error("the secrets of both updates are not there")
	}
}
