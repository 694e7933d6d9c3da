package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mqscope/mqscope/stream"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := InitCA(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := InitCA(dir, false); err == nil {
		t.Error("InitCA overwrote an existing CA")
	}
	return ca
}

func (ca *CA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// startTLSMosquitto runs mosquitto with a TLS listener whose certificate comes from ca; with
// mtls it requires client certificates from ca too.
func startTLSMosquitto(t *testing.T, ca *CA, mtls bool) string {
	t.Helper()
	dir := t.TempDir()
	leaf, err := ca.Leaf("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem")
	if err := WritePEM(leaf, cert, key); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(caFile, ca.CertPEM, 0o644)
	lines := []string{"cafile " + caFile, "certfile " + cert, "keyfile " + key}
	if mtls {
		lines = append(lines, "require_certificate true")
	}
	addr, _ := startMosquitto(t, lines...)
	return addr
}

func TestTLS(t *testing.T) {
	devCA := newTestCA(t)    // the proxy's CA, trusted by the device
	brokerCA := newTestCA(t) // the broker's CA, trusted by the proxy

	t.Run("device-tls", func(t *testing.T) {
		keylog := filepath.Join(t.TempDir(), "keys.txt")
		kf, err := os.OpenFile(keylog, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer kf.Close()
		sc := devCA.ServerConfig("127.0.0.1")
		sc.KeyLogWriter = kf
		srv := startProxy(t, Config{Listen: Endpoint{Transport: stream.TLS, Addr: "127.0.0.1:0"}, ListenTLS: sc, Embedded: true})
		dial := func() net.Conn {
			c, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{RootCAs: devCA.pool(), ServerName: "device.example"})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ConnectionState().PeerCertificates[0].DNSNames; !contains(got, "device.example") {
				t.Errorf("minted certificate names %v", got)
			}
			return c
		}
		pubSub(t, dial, 10)
		b, _ := os.ReadFile(keylog)
		if !bytes.Contains(b, []byte("CLIENT_TRAFFIC_SECRET_0 ")) {
			t.Errorf("key log lacks stream.TLS 1.3 secrets:\n%s", b)
		}
	})

	t.Run("upstream-mtls", func(t *testing.T) {
		addr := startTLSMosquitto(t, brokerCA, true)
		cc, err := brokerCA.ClientCert("proxy")
		if err != nil {
			t.Fatal(err)
		}
		srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TLS, Addr: addr},
			UpstreamTLS: &tls.Config{RootCAs: brokerCA.pool(), ServerName: "localhost", Certificates: []tls.Certificate{*cc}}})
		pubSub(t, dialTCP(t, srv.Addr().String()), 10)
	})

	t.Run("both-tls", func(t *testing.T) {
		addr := startTLSMosquitto(t, brokerCA, false)
		srv := startProxy(t, Config{Listen: Endpoint{Transport: stream.TLS, Addr: "127.0.0.1:0"}, ListenTLS: devCA.ServerConfig("localhost"),
			Upstream: Endpoint{Transport: stream.TLS, Addr: addr}, UpstreamTLS: &tls.Config{RootCAs: brokerCA.pool(), ServerName: "localhost"}})
		pubSub(t, func() net.Conn {
			c, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{RootCAs: devCA.pool(), ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, 10)
	})

	t.Run("upstream-unverified", func(t *testing.T) {
		addr := startTLSMosquitto(t, brokerCA, false)
		// The proxy does not trust the broker's CA: the device learns why in the CONNACK.
		srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TLS, Addr: addr}, UpstreamTLS: &tls.Config{RootCAs: devCA.pool(), ServerName: "localhost"}})
		ack, err := pahoConnect(t, srv.Addr().String(), &paho.Connect{ClientID: "x", CleanStart: true})
		if err == nil || ack == nil || ack.ReasonCode != 0x88 || !strings.Contains(ack.Properties.ReasonString, "certificate") {
			t.Fatalf("CONNACK %+v, %v", ack, err)
		}
		// --insecure connects anyway.
		srv2 := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TLS, Addr: addr}, UpstreamTLS: &tls.Config{InsecureSkipVerify: true}})
		pubSub(t, dialTCP(t, srv2.Addr().String()), 3)
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestLeafCacheBounded: the certificates minted for the names devices ask for are kept up to
// the bound, the least recently used dropped first (and minted again when asked for again).
func TestLeafCacheBounded(t *testing.T) {
	ca := newTestCA(t)
	ca.Leaves = 4
	leaf := func(name string) *tls.Certificate {
		t.Helper()
		c, err := ca.Leaf(name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := map[string]*tls.Certificate{}
	for i := range 10 {
		name := "dev" + strconv.Itoa(i) + ".example"
		first[name] = leaf(name)
		if i == 6 {
			leaf("dev3.example") // used again: it outlives dev4 to dev6, minted after it
		}
	}
	if n := len(ca.cache); n != 4 || ca.lru.Len() != 4 {
		t.Fatalf("%d certificates kept (list %d), want 4", n, ca.lru.Len())
	}
	// Kept: the four most recently used, handed out again as they were.
	for _, name := range []string{"dev3.example", "dev7.example", "dev8.example", "dev9.example"} {
		if leaf(name) != first[name] {
			t.Errorf("%s was minted again, want the kept certificate", name)
		}
	}
	// Dropped: minted anew, for the right name.
	again := leaf("dev6.example")
	if again == first["dev6.example"] {
		t.Error("dev6.example was kept beyond the bound")
	}
	cert, err := x509.ParseCertificate(again.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("dev6.example"); err != nil {
		t.Errorf("re-minted certificate: %v", err)
	}
	if n := len(ca.cache); n != 4 {
		t.Errorf("%d certificates kept after re-minting, want 4", n)
	}
}
