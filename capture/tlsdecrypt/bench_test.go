package tlsdecrypt

import (
	"bytes"
	"crypto/tls"
	"testing"
)

// BenchmarkDecrypt measures decryption throughput, in bytes of TLS records (both directions)
// per second on one core, for a session of about 2 MB each way in 16 KB writes.
func BenchmarkDecrypt(b *testing.B) {
	ec, rs := certs(b)
	msgs := make([][]byte, 128)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, 16<<10)
	}
	for _, c := range []struct {
		name  string
		v     uint16
		suite uint16
		cert  tls.Certificate
	}{
		{"TLS1.3-AES-128-GCM", tls.VersionTLS13, 0, ec},
		{"TLS1.2-AES-128-GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ec},
		{"TLS1.2-ChaCha20-Poly1305", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, rs},
		{"TLS1.2-AES-128-CBC-SHA", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, rs},
		{"TLS1.2-AES-128-CBC-SHA256", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, rs},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := &tls.Config{MinVersion: c.v, MaxVersion: c.v, Certificates: []tls.Certificate{c.cert}}
			if c.suite != 0 {
				cfg.CipherSuites = []uint16{c.suite}
			}
			s := runSession(b, cfg, cfg, msgs...)
			keys := keysOf(b, s.keylog)
			b.SetBytes(int64(len(s.wire[0]) + len(s.wire[1])))
			b.ReportAllocs()
			for b.Loop() {
				var out discard
				c := NewConn(keys, &out)
				w := s.wire
				for len(w[0])+len(w[1]) > 0 { // the two directions in turn, as they come
					for d := range w {
						n := min(len(w[d]), 32<<10)
						c.Data(Dir(d), w[d][:n])
						w[d] = w[d][n:]
					}
				}
				c.Close()
				if out.n != len(s.plain[0])+len(s.plain[1]) {
					b.Fatalf("decrypted %d bytes, want %d", out.n, len(s.plain[0])+len(s.plain[1]))
				}
			}
		})
	}
}

type discard struct{ n int }

func (d *discard) Plaintext(_ Dir, b []byte) { d.n += len(b) }
func (d *discard) Lost(Dir, int)             {}
