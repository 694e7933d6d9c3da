package capture

import (
	"time"

	"github.com/mqscope/mqscope/inspect"
)

// TLSRecord reports an encrypted connection, which mqscope lists but cannot decode.
type TLSRecord struct {
	Time       time.Time
	Conn       int
	Client     string
	Server     string
	ServerName string // from the ClientHello; "" when none was captured
	MidStream  bool   // the start was not captured
}

// Kind returns "tls".
func (*TLSRecord) Kind() string { return "tls" }

// Inspector is a Handler that inspects every MQTT connection with package inspect and
// passes the records on. With a Filter, only the packet records it accepts are passed, with
// the session and close records of the connections that had one.
type Inspector struct {
	Options inspect.Options
	Filter  func(*inspect.PacketRecord) bool
	// Emit receives the records in order. Its first error stops emitting and is kept.
	Emit func(inspect.Record) error
	err  error
}

// Err returns the first error of Emit.
func (in *Inspector) Err() error { return in.err }

func (in *Inspector) emit(r inspect.Record) {
	if in.err == nil {
		in.err = in.Emit(r)
	}
}

// Open implements Handler.
func (in *Inspector) Open(info *ConnInfo) Conn {
	client, server := info.Client.String(), info.Server.String()
	if info.Transport == TLS {
		in.emit(&TLSRecord{Time: info.Start, Conn: info.ID, Client: client, Server: server,
			ServerName: info.ServerName, MidStream: info.MidStream})
		return tlsConn{}
	}
	c := &inspConn{in: in, c: inspect.NewConn(info.ID, client, server, in.Options)}
	if info.MidStream {
		c.c.MidStream()
	}
	return c
}

type tlsConn struct{}

func (tlsConn) Data(Dir, time.Time, []byte) (bool, bool) { return false, false }
func (tlsConn) Gap(Dir, time.Time, int)                  {}
func (tlsConn) Close(time.Time, string, string)          {}

type inspConn struct {
	in      *Inspector
	c       *inspect.Conn
	matched bool // a packet record passed the filter
}

func (c *inspConn) Data(d Dir, t time.Time, b []byte) (completed, wanted bool) {
	for _, r := range c.c.Feed(inspect.Dir(d), t, b) {
		if pr, ok := r.(*inspect.PacketRecord); ok {
			completed = true
			if c.in.Filter != nil && !c.in.Filter(pr) {
				continue
			}
			wanted, c.matched = true, true
		} else if c.in.Filter != nil && !c.matched {
			continue
		}
		c.in.emit(r)
	}
	return completed, wanted
}

func (c *inspConn) Gap(d Dir, t time.Time, n int) {
	for _, r := range c.c.Gap(inspect.Dir(d), t, n) {
		c.in.emit(r)
	}
}

func (c *inspConn) Close(t time.Time, by, reason string) {
	switch {
	case by == "":
		by, reason = "unknown", "the capture ended with the connection open"
	case reason == "FIN":
		by, reason = by+"-eof", "TCP FIN"
	case reason == "RST":
		by, reason = by+"-reset", "TCP RST"
	}
	if r := c.c.Close(t, by, reason); r != nil && (c.in.Filter == nil || c.matched) {
		c.in.emit(r)
	}
}
