// Package peer runs the independent programs tests compare mqscope with (mosquitto, its
// clients, tshark). A missing program skips the test, unless MQSCOPE_REQUIRE_PEERS=1, where it
// fails it.
package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Required reports whether missing peers fail tests instead of skipping them.
func Required() bool { return os.Getenv("MQSCOPE_REQUIRE_PEERS") == "1" }

// Require returns the path of the named program, or ends the test: skipped when it is missing,
// failed when MQSCOPE_REQUIRE_PEERS=1.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if Required() {
		t.Fatalf("%s is not installed and MQSCOPE_REQUIRE_PEERS=1 (apt-get install mosquitto mosquitto-clients tshark)", name)
	}
	t.Skipf("%s is not installed (apt-get install mosquitto mosquitto-clients tshark); set MQSCOPE_REQUIRE_PEERS=1 to fail instead", name)
	return ""
}

// Mosquitto is a mosquitto broker started for one test.
type Mosquitto struct {
	Addr string    // host:port on 127.0.0.1
	Port int       // its port
	Cmd  *exec.Cmd // the process; its Wait belongs to this package: use Kill
	log  *Buffer
	exit chan struct{}
}

// Kill ends the broker at once and returns when the process is gone.
func (m *Mosquitto) Kill() {
	m.Cmd.Process.Kill()
	<-m.exit
}

// StartMosquitto runs mosquitto on a free 127.0.0.1 port with the given extra configuration
// lines until the test ends.
//
// The port is drawn below the kernel's ephemeral range, so no connection or port-0 listener of
// another test can take it between the choice and mosquitto's bind; should another test have
// drawn the same port, mosquitto fails to bind and another port is tried.
func StartMosquitto(t testing.TB, conf ...string) *Mosquitto {
	t.Helper()
	bin := Require(t, "mosquitto")
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // mosquitto may drop to its own user and must read the files
	var last string
	for range 10 {
		port := lowPort()
		lines := []string{"listener " + strconv.Itoa(port) + " 127.0.0.1", "allow_anonymous true", "persistence false"}
		if os.Geteuid() == 0 {
			lines = append(lines, "user root")
		}
		lines = append(lines, conf...)
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		m := &Mosquitto{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, log: new(Buffer)}
		m.Cmd = exec.Command(bin, "-c", path)
		m.Cmd.Stdout, m.Cmd.Stderr = m.log, m.log
		if err := m.Cmd.Start(); err != nil {
			t.Fatalf("mosquitto: %v", err)
		}
		exited := make(chan struct{})
		m.exit = exited
		go func() { m.Cmd.Wait(); close(exited) }()
		if up(m.Addr, exited) {
			t.Cleanup(func() {
				m.Cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("mosquitto log:\n%s", m.log.String())
				}
			})
			return m
		}
		m.Cmd.Process.Kill()
		<-exited
		last = m.log.String()
	}
	t.Fatalf("mosquitto did not start on any of 10 ports; its last words:\n%s", last)
	return nil
}

// lowPort draws a port below the kernel's ephemeral range (32768 and up on Linux).
func lowPort() int { return 20000 + rand.IntN(12000) }

// FreeAddr returns a 127.0.0.1 address whose port is free now and lies below the ephemeral
// range, for a server in the test's own process that cannot be told to bind port 0.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowPort())))
		if err == nil {
			addr := l.Addr().String()
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below 32000 on 127.0.0.1")
	return ""
}

// up waits until addr accepts connections, or the process has exited, or 10 s have passed.
func up(addr string, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			select {
			case <-exited: // somebody else's listener answered
				return false
			case <-time.After(10 * time.Millisecond):
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Buffer is a bytes.Buffer that a process, a server goroutine and a test may use at once.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed at the next Write, when someone waits
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// WaitFor waits until what was written so far satisfies ok, at most timeout; it reports
// whether it did. It looks again at each Write, not at intervals.
func (s *Buffer) WaitFor(timeout time.Duration, ok func(written string) bool) bool {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if ok(s.b.String()) {
			s.mu.Unlock()
			return true
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// ServerCert writes a self-signed certificate for the DNS name and its key (0600) into a
// directory mosquitto can read, and returns their paths and a pool trusting the certificate.
func ServerCert(t testing.TB, name string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // mosquitto may run as its own user
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// APIRequest sends a request to mqscope's control API with the bearer token (unless hdr sets
// Authorization) and a JSON body when body is not empty, and returns the status and body. hdr
// holds header name and value pairs: an empty value removes the header, "Host" sets the
// request's Host.
func APIRequest(t testing.TB, method, url, token, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		switch {
		case hdr[i] == "Host":
			req.Host = hdr[i+1]
		case hdr[i+1] == "":
			req.Header.Del(hdr[i])
		default:
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// WaitUp waits until addr accepts connections (a second listener of a peer started with
// StartMosquitto, which waits for the first only), and fails the test after 10 s.
func WaitUp(t testing.TB, addr string) {
	t.Helper()
	if !up(addr, nil) {
		t.Fatalf("nothing listens on %s after 10 s", addr)
	}
}

// RoundTrips writes msg to c and reads as many bytes back, b.N times, and reports the p50 and
// p99 round trip (the proxy's latency benchmarks, against an echo server).
func RoundTrips(b *testing.B, c net.Conn, msg []byte) {
	b.Helper()
	buf := bytes.Clone(msg)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		s := time.Now()
		c.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// Serve accepts connections on a loopback port, whose address it returns, and runs handle on
// each in a goroutine of its own; the listener closes when the test ends. It stands in for a
// peer that misbehaves.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
