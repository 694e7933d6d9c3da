package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
	"github.com/spf13/pflag"
)

// brokerOptions are the flags of the commands that connect to a broker as a client (probe,
// replay): its TLS and the credentials.
type brokerOptions struct {
	ca, cert, key, sni string
	insecure           bool
	username           string
	password           string
	timeout            time.Duration
}

// addTLSFlags adds the flags of the broker's TLS and of the connection.
func (b *brokerOptions) addTLSFlags(f *pflag.FlagSet) {
	f.StringVar(&b.ca, "ca", "", "verify a TLS broker with the CA certificates in `FILE` (PEM)")
	f.StringVar(&b.cert, "cert", "", "client certificate `FILE` for brokers that want mutual TLS")
	f.StringVar(&b.key, "key", "", "private key `FILE` of --cert")
	f.StringVar(&b.sni, "sni", "", "server `NAME` sent to and verified on a TLS broker (default: its host)")
	f.BoolVar(&b.insecure, "insecure", false, "do not verify the broker's certificate")
	f.DurationVar(&b.timeout, "connect-timeout", 10*time.Second, "give up connecting to the broker after `DURATION`")
}

// addFlags adds the TLS flags and the credentials.
func (b *brokerOptions) addFlags(f *pflag.FlagSet) {
	b.addTLSFlags(f)
	f.StringVarP(&b.username, "username", "u", "", "user `NAME` in CONNECT (default: $MQSCOPE_USERNAME)")
	f.StringVarP(&b.password, "password", "P", "", "`PASSWORD` in CONNECT (default: $MQSCOPE_PASSWORD, which others cannot see in the process list); never printed")
}

// credentials returns the user name and password from the flags, else the environment.
func (b *brokerOptions) credentials(f *pflag.FlagSet) (user string, hasUser bool, pass []byte, hasPass bool) {
	user, hasUser = b.username, f.Changed("username")
	if !hasUser {
		user, hasUser = os.LookupEnv("MQSCOPE_USERNAME")
	}
	p, hasPass := b.password, f.Changed("password")
	if !hasPass {
		p, hasPass = os.LookupEnv("MQSCOPE_PASSWORD")
	}
	return user, hasUser, []byte(p), hasPass
}

// broker is a broker to connect to: its address and how to dial it, and what to close after.
type broker struct {
	endpoint stream.Endpoint
	dial     mqttclient.DialOptions
	embedded *proxy.Embedded // "embedded": started here
}

func (b *broker) Close() error {
	if b.embedded != nil {
		return b.embedded.Close()
	}
	return nil
}

// open parses addr (host:port, tls://, ws://, wss://, or "embedded", started in process playing
// prof when not nil) and sets up TLS; warnings go to warn.
func (b *brokerOptions) open(addr string, prof *inspect.Profile, warn io.Writer) (*broker, error) {
	if addr == "embedded" {
		// Its log is left out: what the broker did to the client is what the command reports.
		e, err := proxy.StartEmbeddedProfile("", prof, nil)
		if err != nil {
			return nil, err
		}
		return &broker{endpoint: e.Endpoint(), dial: mqttclient.DialOptions{Dial: e.Dial, Timeout: b.timeout}, embedded: e}, nil
	}
	e, err := stream.ParseEndpoint(addr, "127.0.0.1")
	if err != nil {
		return nil, usageError{fmt.Errorf("broker %w", err)}
	}
	br := &broker{endpoint: e, dial: mqttclient.DialOptions{Timeout: b.timeout}}
	if e.Secure() {
		if br.dial.TLS, err = clientTLSConfig(b.ca, b.cert, b.key, b.sni, b.insecure, nil); err != nil {
			return nil, err
		}
		if b.insecure {
			fmt.Fprintln(warn, "mqscope: warning: --insecure: the broker's certificate is not verified, so anyone on the way can pose as the broker and read what is sent, passwords included")
		}
	} else if b.ca != "" || b.cert != "" || b.insecure || b.sni != "" {
		return nil, usageError{errors.New("--ca, --cert, --insecure and --sni need a tls:// or wss:// broker")}
	}
	return br, nil
}

// clientTLSConfig is the TLS configuration of a client to a broker: verified with the CA
// certificates in caFile (system roots when ""), a client certificate for mutual TLS, the
// server name sni, secrets to keylog when not nil.
func clientTLSConfig(caFile, certFile, keyFile, sni string, insecure bool, keylog io.Writer) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: insecure, ServerName: sni, KeyLogWriter: keylog}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificates %s: no PEM certificates", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate and key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
