package proxy

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CA file names inside the CA directory.
const (
	CACertFile = "ca.pem"     // the certificate to trust (0644)
	CAKeyFile  = "ca-key.pem" // its private key (0600)
)

// CA is mqscope's local certificate authority: `mqscope ca init` creates it, and the proxy
// mints from it a certificate for whatever name a device asks for, so a device that trusts the
// CA accepts the proxy in place of its broker.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Dir     string
	key     crypto.Signer
	// Leaves bounds how many minted certificates are kept (the least recently used go first);
	// DefaultLeaves when 0. A device names whatever it likes in SNI: without a bound, every new
	// name would be kept for good.
	Leaves int

	mu    sync.Mutex
	cache map[string]*list.Element // of *leafEntry
	lru   list.List                // most recently used first
}

// DefaultLeaves is how many minted certificates a CA keeps unless told.
const DefaultLeaves = 256

type leafEntry struct {
	name string
	cert *tls.Certificate
}

// DefaultCADir is where `mqscope ca init` puts the CA: $XDG_CONFIG_HOME/mqscope/ca or the
// platform's equivalent.
func DefaultCADir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "mqscope", "ca"), nil
}

// ErrCAExists is returned by InitCA when dir already holds a CA.
var ErrCAExists = errors.New("a CA already exists there")

// InitCA creates a CA in dir (made 0700): an ECDSA P-256 key written 0600 and a self-signed
// certificate valid for ten years. It refuses to overwrite an existing CA unless force.
func InitCA(dir string, force bool) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if !force {
		if _, err := os.Stat(keyPath); err == nil {
			return nil, fmt.Errorf("%s: %w", keyPath, ErrCAExists)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"mqscope"}, CommonName: "mqscope local CA (" + host + ")"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key first, created 0600 from the start (never world-readable, not even briefly).
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return LoadCA(dir)
}

func writeFile(path string, b []byte, perm fs.FileMode) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil { // umask may have taken bits away from the cert
		f.Close()
		return err
	}
	return f.Close()
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// LoadCA reads the CA in dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no mqscope CA in %s: run `mqscope ca init` first, or give --cert and --key", dir)
		}
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("CA in %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA in %s: the key cannot sign", dir)
	}
	return &CA{Cert: cert, CertPEM: certPEM, Dir: dir, key: key, cache: map[string]*list.Element{}}, nil
}

// Leaf returns a server certificate for name (a host name or an IP address), minted on first
// use and kept among the Leaves most recently used. It also covers localhost, 127.0.0.1 and
// ::1.
func (ca *CA) Leaf(name string) (*tls.Certificate, error) {
	if name == "" {
		name = "localhost"
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if e := ca.cache[name]; e != nil {
		ca.lru.MoveToFront(e)
		return e.Value.(*leafEntry).cert, nil
	}
	c, err := ca.issue(name, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	ca.cache[name] = ca.lru.PushFront(&leafEntry{name, c})
	limit := ca.Leaves
	if limit <= 0 {
		limit = DefaultLeaves
	}
	for ca.lru.Len() > limit {
		old := ca.lru.Back()
		ca.lru.Remove(old)
		delete(ca.cache, old.Value.(*leafEntry).name)
	}
	return c, nil
}

// ClientCert issues a client certificate for name, for brokers that want mutual TLS (and for
// tests).
func (ca *CA) ClientCert(name string) (*tls.Certificate, error) {
	return ca.issue(name, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(name string, usage x509.ExtKeyUsage) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"mqscope"}, CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, 397),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if name != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: nil}, nil
}

// ServerConfig returns a TLS configuration presenting a certificate minted for the name each
// device asks for (SNI), or for defaultName when it asks for none.
func (ca *CA) ServerConfig(defaultName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := h.ServerName
			if name == "" {
				name = defaultName
			}
			return ca.Leaf(name)
		},
	}
}

// WritePEM writes a certificate chain and its key as PEM files (the key 0600).
func WritePEM(c *tls.Certificate, certPath, keyPath string) error {
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, chain, 0o644)
}
