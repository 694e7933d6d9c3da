package proxy

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

// TestTLSAdvice makes real handshakes fail the ways devices make them fail, and checks that
// the proxy's side of each names the cause and what to do, not Go's error alone.
func TestTLSAdvice(t *testing.T) {
	proxyCA, otherCA := newTestCA(t), newTestCA(t)
	fixed, err := proxyCA.Leaf("broker.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		server *tls.Config
		client func(c net.Conn) error // the device's side
		want   string
	}{
		{"device does not trust the CA", proxyCA.ServerConfig("localhost"),
			func(c net.Conn) error {
				return tls.Client(c, &tls.Config{RootCAs: otherCA.pool(), ServerName: "device.example"}).Handshake()
			}, "does not trust mqscope's CA (install ca.pem"}, // Go's client says "bad certificate" for an unknown authority too
		{"name not in --cert", &tls.Config{Certificates: []tls.Certificate{*fixed}},
			func(c net.Conn) error {
				return tls.Client(c, &tls.Config{RootCAs: proxyCA.pool(), ServerName: "other.example"}).Handshake()
			}, `"other.example") is not in the certificate`},
		{"no shared cipher suite", proxyCA.ServerConfig("localhost"),
			func(c net.Conn) error {
				return tls.Client(c, &tls.Config{RootCAs: proxyCA.pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}).Handshake()
			}, "share no cipher suite"},
		{"plain MQTT to a TLS listener", proxyCA.ServerConfig("localhost"),
			func(c net.Conn) error {
				_, err := c.Write([]byte{0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x04, 't', 'e', 's', 't'})
				return err
			}, "speaks plain MQTT to a TLS listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc, pc := net.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.client(dc)
				dc.Close()
			}()
			sc := tls.Server(pc, tc.server)
			err := sc.Handshake()
			pc.Close()
			<-done
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if got := tlsAdvice(err, sc.ConnectionState().ServerName); !strings.Contains(got, tc.want) {
				t.Errorf("error %q: advice %q, want %q", err, got, tc.want)
			}
		})
	}
}
