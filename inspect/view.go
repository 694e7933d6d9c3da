package inspect

import (
	"slices"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// View is a read-only view of one connection's live negotiated state, for those who act on a
// connection while it is inspected (the proxy's fault stages): each method reads under the
// connection's lock and copies only the value asked for, never a map. The zero View knows
// nothing: Known is false and every limit is the standard's default.
type View struct{ c *Conn }

// View returns the live view of c.
func (c *Conn) View() View { return View{c} }

// Known reports whether the view is of a connection.
func (v View) Known() bool { return v.c != nil }

// Version returns the protocol version in use (0 while unknown).
func (v View) Version() decode.Version {
	if v.c == nil {
		return 0
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.version
}

// Negotiated reports whether CONNACK was seen, so that Limits are what the peers agreed on.
func (v View) Negotiated() bool {
	if v.c == nil {
		return false
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.st.Negotiated
}

// Limits returns the limits the sender in direction d must obey (the peer's Receive Maximum,
// Maximum Packet Size and Topic Alias Maximum, and for the client the server's capabilities);
// the standard's defaults before CONNACK.
func (v View) Limits(d stream.Dir) Limits {
	if v.c == nil {
		return DefaultLimits
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	if !v.c.st.Negotiated {
		return DefaultLimits
	}
	return *v.c.st.Effective.Limit(d)
}

// MaxPayload returns the largest PUBLISH payload the connection's broker profile accepts (0
// when no profile sets one).
func (v View) MaxPayload() int {
	if v.c == nil || v.c.prof == nil {
		return 0
	}
	return v.c.prof.MaxPayload
}

// Alias returns the topic the sender in direction d mapped to alias.
func (v View) Alias(d stream.Dir, alias uint16) (topic string, ok bool) {
	if v.c == nil {
		return "", false
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	topic, ok = v.c.aliases[d&1][alias]
	return topic, ok
}

// Aliases returns how many aliases the sender in direction d has mapped.
func (v View) Aliases(d stream.Dir) int {
	if v.c == nil {
		return 0
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return len(v.c.aliases[d&1])
}

// InFlight returns how many QoS 1 and 2 PUBLISH packets the sender in direction d has
// unacknowledged.
func (v View) InFlight(d stream.Dir) int {
	if v.c == nil {
		return 0
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.inflight[d&1]
}

// View returns the live view of the open connection id (the zero View when it is not open).
func (o *Observer) View(id int) View {
	o.mu.Lock()
	defer o.mu.Unlock()
	return View{o.conns[id]}
}

// InFlightIDs returns the Packet Identifiers of the QoS 1 and 2 PUBLISH packets the sender in
// direction d has unacknowledged (InFlight of them), lowest first.
func (v View) InFlightIDs(d stream.Dir) []uint16 {
	if v.c == nil {
		return nil
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	var ids []uint16
	for id, e := range v.c.flight[d&1] {
		if e.state != flightSub && e.state != flightUnsub {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// IDInUse reports whether the sender in direction d has Packet Identifier id in use: a PUBLISH,
// SUBSCRIBE or UNSUBSCRIBE of its own not yet acknowledged.
func (v View) IDInUse(d stream.Dir, id uint16) bool {
	if v.c == nil {
		return false
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	_, ok := v.c.flight[d&1][id]
	return ok
}
