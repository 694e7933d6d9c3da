package stream

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Endpoint is a parsed network address of an MQTT server or listener: the proxy's --listen and
// --upstream, the broker of probe and replay.
type Endpoint struct {
	Transport Transport
	Addr      string // host:port
	Path      string // WebSocket path, "/mqtt" by default
}

// Secure reports whether the endpoint speaks TLS.
func (e Endpoint) Secure() bool { return e.Transport.Secure() }

// Host returns the host part of Addr.
func (e Endpoint) Host() string {
	h, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return e.Addr
	}
	return h
}

// String returns the endpoint as a URL, or host:port for plain TCP.
func (e Endpoint) String() string {
	switch e.Transport {
	case TCP:
		return e.Addr
	case WebSocket, WSS:
		return e.Transport.String() + "://" + e.Addr + e.Path
	}
	return e.Transport.String() + "://" + e.Addr
}

// ParseEndpoint parses "host:port" (TCP), "tcp://", "mqtt://", "tls://", "ssl://", "mqtts://",
// "ws://host:port/path" or "wss://host:port/path". A missing host means defaultHost; a missing
// port means the scheme's usual one (1883, 8883, 80, 443).
func ParseEndpoint(s, defaultHost string) (Endpoint, error) {
	if s == "" {
		return Endpoint{}, fmt.Errorf("empty address")
	}
	var e Endpoint
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme := strings.ToLower(s[:i])
		switch scheme {
		case "tcp", "mqtt":
			e.Transport = TCP
		case "tls", "ssl", "mqtts":
			e.Transport = TLS
		case "ws":
			e.Transport = WebSocket
		case "wss":
			e.Transport = WSS
		default:
			return Endpoint{}, fmt.Errorf("address %q: unknown scheme %q (want tcp, tls, ws or wss)", s, scheme)
		}
		u, err := url.Parse(s)
		if err != nil {
			return Endpoint{}, fmt.Errorf("address %q: %v", s, err)
		}
		rest = u.Host
		e.Path = u.Path
		if u.RawQuery != "" {
			e.Path += "?" + u.RawQuery
		}
	} else {
		e.Transport = TCP
	}
	if e.Transport == WebSocket || e.Transport == WSS {
		if e.Path == "" {
			e.Path = "/mqtt"
		}
	} else if e.Path != "" && e.Path != "/" {
		return Endpoint{}, fmt.Errorf("address %q: a path only makes sense for ws:// and wss://", s)
	} else {
		e.Path = ""
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		// No port given.
		host, port = strings.Trim(rest, "[]"), map[Transport]string{TCP: "1883", TLS: "8883", WebSocket: "80", WSS: "443"}[e.Transport]
		if strings.Contains(rest, ":") && !strings.HasPrefix(rest, "[") {
			return Endpoint{}, fmt.Errorf("address %q: %v", s, err)
		}
	}
	if host == "" {
		host = defaultHost
	}
	e.Addr = net.JoinHostPort(host, port)
	return e, nil
}

// ClientTLS returns cfg (or a default) for a client connecting to e, with the server name set
// from the endpoint's host if cfg has none.
func (e Endpoint) ClientTLS(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = e.Host()
	}
	return cfg
}
