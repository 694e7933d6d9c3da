// Package replay plays one side of a captured MQTT session against a live peer: the device's
// packets to a broker (AsClient), and compares what the peer answers with what it answered in
// the capture, reporting the first divergence in the standard's terms.
//
// The captured session comes from any stream.Source (Load): a capture file, the proxy. Packet
// identifiers of acknowledgements, Topic Aliases and the Client Identifier are rewritten where the
// new session requires it; every other byte goes out as captured, breaches included, so that a
// captured broker reaction can be reproduced.
package replay

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Session is one captured connection: its packets, as inspection saw them, and its end.
type Session struct {
	Conn     int
	ClientID string
	Packets  []*inspect.PacketRecord
	Close    *inspect.CloseRecord // nil when the source ended first without saying
}

// Selector picks sessions: by connection number, Client Identifier, or a packet matching a
// filter; zero fields select everything.
type Selector struct {
	Conn     int
	ClientID string
	Filter   *inspect.Filter
}

func (s Selector) match(ss *Session) bool {
	if s.Conn != 0 && ss.Conn != s.Conn || s.ClientID != "" && ss.ClientID != s.ClientID {
		return false
	}
	if s.Filter == nil {
		return true
	}
	return slices.ContainsFunc(ss.Packets, s.Filter.Match)
}

// Load reads src and returns the sessions sel selects that have a CONNECT (a session whose
// start was not captured cannot be replayed), in the source's order.
func Load(ctx context.Context, src stream.Source, sel Selector, opts inspect.Options) ([]*Session, error) {
	var mu sync.Mutex
	byConn := map[int]*Session{}
	get := func(id int) *Session {
		s := byConn[id]
		if s == nil {
			s = &Session{Conn: id}
			byConn[id] = s
		}
		return s
	}
	// A connection sel refuses by its number or Client Identifier is let go as soon as that is
	// known, and one without a CONNECT first or a packet matching the filter when it closes:
	// a large capture is not held whole for one of its connections.
	gone := map[int]bool{}
	o := &inspect.Observer{Options: opts, Emit: func(r inspect.Record) {
		mu.Lock()
		defer mu.Unlock()
		switch r := r.(type) {
		case *inspect.PacketRecord:
			switch {
			case gone[r.Conn]:
			case sel.Conn != 0 && r.Conn != sel.Conn || sel.ClientID != "" && r.ClientID != "" && r.ClientID != sel.ClientID:
				gone[r.Conn] = true
				delete(byConn, r.Conn)
			default:
				s := get(r.Conn)
				s.Packets = append(s.Packets, r)
				s.ClientID = r.ClientID
			}
		case *inspect.CloseRecord:
			switch s := byConn[r.Conn]; {
			case gone[r.Conn]:
			case s == nil || s.Packets[0].Type() != decode.CONNECT || !sel.match(s):
				gone[r.Conn] = true
				delete(byConn, r.Conn)
			default:
				s.Close = r
			}
		}
	}}
	if err := src.Run(ctx, o); err != nil {
		return nil, err
	}
	var out []*Session
	for _, s := range byConn {
		if len(s.Packets) > 0 && s.Packets[0].Type() == decode.CONNECT && sel.match(s) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Conn < out[j].Conn })
	return out, nil
}

// Options configure a replay.
type Options struct {
	// Speed divides the captured gaps between the packets sent; 0 sends each packet as soon as
	// the peer has answered what it answered before it in the capture (as fast as
	// acknowledgements allow). Either way a packet waits for those answers, at most Wait.
	Speed float64
	// Wait is how long an expected answer is waited for, and how long the peer may stay silent
	// at the end before the replay ends; 5 s when 0.
	Wait time.Duration
	// ClientID, when set, replaces the Client Identifier of the CONNECT.
	ClientID string
	// Now and Sleep are the clock (real when nil).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o *Options) defaults() {
	if o.Wait <= 0 {
		o.Wait = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// Result is what a replay did and found.
type Result struct {
	Sent     int      // packets sent
	Received int      // packets received from the peer
	Remapped []string // what was rewritten, one line each
	// Captured and Replayed are the peer's packets, as Signature puts them.
	Captured, Replayed []string
	// Divergence is the first difference; nil when the peer did what it did in the capture.
	Divergence *Divergence
}

// Divergence is the first place where the new session differs from the captured one.
type Divergence struct {
	// Index is the captured packet's number in its connection (0: the end of the connection).
	Index    int
	Captured string // what the peer did in the capture: "DISCONNECT 0x95 after PUBLISH #12"
	Replayed string // what it did now: "PUBACK", "nothing within 5s", "closed by the server"
}

func (d *Divergence) String() string {
	return "captured: " + d.Captured + "; replayed: " + d.Replayed
}

// Conn is the live connection a replay plays on: mqttclient.Client is one.
type Conn interface {
	Write(b []byte) error
	Next(ctx context.Context) (decode.Packet, error)
	Version() decode.Version
	SetVersion(decode.Version)
}

// ErrNoConnect is returned for a session that does not begin with its CONNECT.
var ErrNoConnect = errors.New("the session does not begin with a CONNECT")
