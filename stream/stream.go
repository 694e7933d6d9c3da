// Package stream is the event model between mqscope's sources of MQTT byte streams (a capture
// file, a live interface, the proxy) and its consumers (inspection, recording, fault stages,
// the terminal UI, replay). A source calls an Observer's Open once per connection it finds and
// then feeds the ConnObserver it gets back the connection's bytes, in order, each direction
// separately, with its losses and its end. Consumers see nothing of where the bytes came from
// beyond the Conn description, so each consumer is written once for every source.
//
// The package imports only the standard library; every other package of mqscope may import it.
package stream

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Dir is the direction bytes travel in.
type Dir uint8

// Directions.
const (
	C2S Dir = iota // from the client (the device) to the server (the broker)
	S2C            // from the server to the client
)

// String returns "c2s" or "s2c".
func (d Dir) String() string {
	if d == S2C {
		return "s2c"
	}
	return "c2s"
}

// Arrow returns "→" for client to server and "←" for server to client.
func (d Dir) Arrow() string {
	if d == S2C {
		return "←"
	}
	return "→"
}

// Peer returns the other direction.
func (d Dir) Peer() Dir { return 1 - d }

// Sender returns the side that sends in direction d: Client or Server.
func (d Dir) Sender() Side {
	if d == S2C {
		return Server
	}
	return Client
}

// MarshalText makes a Dir appear as "c2s" or "s2c" in JSON.
func (d Dir) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Transport says how a connection's MQTT bytes are carried.
type Transport uint8

// Transports.
const (
	TCP       Transport = iota // MQTT directly over TCP
	TLS                        // MQTT over TLS (in a capture without keys: encrypted, not decoded)
	WebSocket                  // MQTT in binary WebSocket frames after an HTTP upgrade
	WSS                        // WebSocket over TLS
	Memory                     // an in-process connection (the proxy's embedded broker)
)

var transportNames = [...]string{"tcp", "tls", "ws", "wss", "mem"}

// String returns the transport's short name, as in a URL scheme: tcp, tls, ws, wss, mem.
func (t Transport) String() string {
	if int(t) < len(transportNames) {
		return transportNames[t]
	}
	return "unknown"
}

// MarshalText makes a Transport appear by its name in JSON.
func (t Transport) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a Transport by its name.
func (t *Transport) UnmarshalText(b []byte) error {
	for i, n := range transportNames {
		if n == string(b) {
			*t = Transport(i)
			return nil
		}
	}
	return fmt.Errorf("unknown transport %q", b)
}

// Secure reports whether the transport is encrypted with TLS.
func (t Transport) Secure() bool { return t == TLS || t == WSS }

// Conn describes one connection a source found.
type Conn struct {
	ID             int // 1, 2, ... in the order the source found its connections
	Client, Server netip.AddrPort
	// Upstream names the server as configured when its address is not known (a proxy whose
	// broker could not be reached); see ServerString.
	Upstream string
	Start    time.Time // when the connection was opened, or its first bytes captured
	// Transport is how the client's side carries MQTT; Broker how the server's does (they
	// differ only in the proxy, which may speak WebSocket to the device and TCP to the broker).
	Transport, Broker Transport
	// MidStream is set when the start of the connection was not seen (a capture that began
	// while it was open): its first bytes may be the middle of an MQTT packet, and the CONNECT
	// that fixed its version and limits is unknown.
	MidStream  bool
	ServerName string   // TLS: the server name the client asked for ("" when unknown)
	ALPN       []string // TLS: the application protocols the client offered
	Path       string   // WebSocket: the path of the upgrade request
	// TLS is set when a capture was read with TLS session keys: what is known of the
	// connection's TLS, and whether its bytes are decrypted. The source may replace it (never
	// change it) until it closes the connection, when a problem appears after its first bytes.
	TLS *TLSInfo
	// Packet is the number of the connection's first captured packet (1-based, across the
	// files of a capture); 0 for a proxied connection.
	Packet int64
}

// ClientString returns the client's address as "ip:port".
func (c *Conn) ClientString() string { return c.Client.String() }

// ServerString returns the server's address as "ip:port", or Upstream when the address is not
// known.
func (c *Conn) ServerString() string {
	if !c.Server.IsValid() && c.Upstream != "" {
		return c.Upstream
	}
	return c.Server.String()
}

// Side names who ended a connection.
type Side uint8

// Sides.
const (
	Unknown   Side = iota // the source does not know
	Client                // the device
	Server                // the broker
	Proxy                 // mqscope's proxy itself
	SourceEnd             // nobody: the capture (or the proxy) ended while the connection was open
)

var sideNames = [...]string{"unknown", "client", "server", "proxy", "source-end"}

// String returns "unknown", "client", "server", "proxy" or "source-end".
func (s Side) String() string {
	if int(s) < len(sideNames) {
		return sideNames[s]
	}
	return "unknown"
}

// How says how a connection ended.
type How uint8

// Ways a connection ends.
const (
	Unsaid     How = iota // the source does not say
	FIN                   // an orderly close: TCP FIN, TLS close_notify, WebSocket close
	RST                   // a TCP reset, or a read error passed on as one
	Timeout               // a side stopped answering
	Refused               // a side refused the bytes written to it
	Handshake             // the TLS or WebSocket handshake failed
	Disconnect            // after an MQTT DISCONNECT
	Stopped               // the proxy ended it (shutdown, the control API, a fault)
	Unreached             // the proxy could not reach the broker
)

var howNames = [...]string{"unsaid", "FIN", "RST", "timeout", "refused", "handshake", "DISCONNECT", "stopped", "unreached"}

// String returns the short name of how.
func (h How) String() string {
	if int(h) < len(howNames) {
		return howNames[h]
	}
	return "unsaid"
}

// End is how a connection ended: who ended it, how, and in Detail what the source knows
// beyond that (the proxy's account of both directions, an error), for renderers to show.
type End struct {
	By     Side
	How    How
	Detail string
}

// Abrupt reports whether the connection ended without an orderly close: a reset, a timeout or
// a refused write, which a recording shows as a TCP reset.
func (e End) Abrupt() bool { return e.How == RST || e.How == Timeout || e.How == Refused }

// Observer watches the connections of a source. Open is called once per connection, before
// any of its bytes; the ConnObserver it returns (nil: not interested) gets the connection's
// events. Calls for one connection are serialised; calls for different connections may run
// concurrently (in the proxy) and their order across connections is the source's.
type Observer interface {
	Open(c *Conn) ConnObserver
}

// ConnObserver watches one connection.
type ConnObserver interface {
	// Data delivers the next bytes of direction dir, which arrived at time t: in the proxy,
	// the bytes as they were forwarded (after fault stages), in a capture as reassembled. b is
	// valid only during the call. Data must be quick: the source waits for it.
	Data(dir Dir, t time.Time, b []byte)
	// Gap reports that n > 0 bytes of direction dir were lost (a capture missed them);
	// delivery resumes after them, possibly inside an MQTT packet.
	Gap(dir Dir, t time.Time, n int)
	// Close reports the end of the connection. No call follows it.
	Close(t time.Time, end End)
}

// Source produces connections and their events until its input ends, ctx is cancelled or it
// fails.
type Source interface {
	Run(ctx context.Context, o Observer) error
}

// Keeper is implemented by a ConnObserver that tells its source which bytes it wanted, so that
// the source can keep the packets that carried them (a capture written back to a file).
// A source that knows it calls Keep instead of Data.
type Keeper interface {
	// Keep is Data that also reports whether the bytes completed at least one MQTT packet,
	// and whether one of those was wanted.
	Keep(dir Dir, t time.Time, b []byte) (completed, wanted bool)
}

// Unseer is implemented by a ConnObserver that wants to know of bytes that were probably lost
// before they are skipped: a capture whose receiver acknowledged bytes it does not have.
type Unseer interface {
	Unseen(dir Dir, t time.Time)
}

// Originator is implemented by a ConnObserver that tells apart the bytes a source sends on its
// own (the proxy's DISCONNECT at shutdown or on the control API's request, its CONNACK when the
// broker cannot be reached) from the bytes it passes on from the peers. Such a source calls Own
// instead of Data for its own bytes; to other observers they are Data.
type Originator interface {
	Own(dir Dir, t time.Time, b []byte)
}

// Compacter is implemented by a ConnObserver that can let go of memory while its connection
// carries nothing: a capture calls Compact on a connection that has been quiet since last, a
// long time before t (capture time), once per quiet spell.
type Compacter interface {
	Compact(t, last time.Time)
}

// Flusher is implemented by observers that hold output to flush when their source stops.
type Flusher interface {
	Flush() error
}

// Observers fans one source's events out to several observers, in order. Open returns nil
// when none of them is interested.
type Observers []Observer

// Open implements Observer.
func (os Observers) Open(c *Conn) ConnObserver {
	var cs []ConnObserver
	for _, o := range os {
		if co := o.Open(c); co != nil {
			cs = append(cs, co)
		}
	}
	switch len(cs) {
	case 0:
		return nil
	case 1:
		return cs[0]
	}
	return connObservers(cs)
}

type connObservers []ConnObserver

func (cs connObservers) Data(d Dir, t time.Time, b []byte) {
	for _, c := range cs {
		c.Data(d, t, b)
	}
}

func (cs connObservers) Gap(d Dir, t time.Time, n int) {
	for _, c := range cs {
		c.Gap(d, t, n)
	}
}

// Compact implements Compacter for those that do.
func (cs connObservers) Compact(t, last time.Time) {
	for _, c := range cs {
		if k, ok := c.(Compacter); ok {
			k.Compact(t, last)
		}
	}
}

func (cs connObservers) Close(t time.Time, e End) {
	for _, c := range cs {
		c.Close(t, e)
	}
}
