package inspect

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// FaultRecord is a fault the proxy's rules applied to a frame ("fault"): it comes right before
// the record of the first packet the fault sent (Index), or alone when the fault dropped the
// frame. The packet records show what was sent, and the peers are judged by it; Original is
// what the sender sent (the broker's CONNACK before a rewrite).
type FaultRecord struct {
	Time     time.Time
	Conn     int
	Client   string
	Server   string
	ClientID string
	Dir      stream.Dir
	Rule     string // the rule's name
	Did      string // what was done
	Used     string // the negotiated values a parameter used ("" when none)
	Before   []byte // the frame the rule selected, as it came
	After    []byte // what was sent instead, every frame (empty: dropped)
	// (JSON lines show Before and After in hex, or <redacted> when they hold a password or
	// authentication data, unless ShowSecrets.)
	// Original is Before decoded (without field locations).
	Original decode.Packet
	// Index is the packet record of the first frame the fault altered or sent; 0 when none was
	// seen (dropped, or the connection ended first).
	Index     int
	Own       bool // the frames sent are the proxy's own (a DISCONNECT)
	Closed    bool // the proxy closed the connection after them
	Malformed bool // on purpose

	secret bool // Before or After holds a password or authentication data
}

// Kind returns "fault".
func (*FaultRecord) Kind() string { return "fault" }

// Alter takes what a fault of the proxy did in direction dir (stream.Alterer), before the
// frames it sent. Its record comes with the first frame it altered or sent; at once when it
// sent none.
func (c *Conn) Alter(dir stream.Dir, t time.Time, a *stream.Alteration) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(a.After) == 0 {
		return []Record{c.faultRecord(dir, t, a, 0)}
	}
	if pushed := c.alters[dir&1].Add(a); pushed != nil {
		return []Record{c.faultRecord(dir, t, pushed, 0)} // its frames went unseen
	}
	return nil
}

// faultRecord is the record of alteration a.
func (c *Conn) faultRecord(dir stream.Dir, t time.Time, a *stream.Alteration, index int) *FaultRecord {
	fr := &FaultRecord{Time: t, Conn: c.st.ID, Client: c.st.Client, Server: c.st.Server, ClientID: c.st.ClientID, Dir: dir,
		Rule: a.Rule, Did: a.Did, Used: a.Used, Before: a.Before, Index: index, Own: a.Own, Closed: a.Closed, Malformed: a.Malformed}
	for _, b := range a.After {
		fr.After = append(fr.After, b...)
	}
	if len(a.Before) > 0 {
		fr.Original = decode.DecodeWith(a.Before, c.version, decode.Options{Lean: true})
		fr.secret = HasSecret(fr.Original)
	}
	for _, b := range a.After {
		if len(b) > 0 && !fr.secret {
			switch decode.Type(b[0] >> 4) {
			case decode.CONNECT, decode.CONNACK, decode.AUTH:
				fr.secret = HasSecret(decode.DecodeWith(b, c.version, decode.Options{Lean: true}))
			}
		}
	}
	return fr
}

// HasSecret reports whether p carries a password or authentication data.
func HasSecret(p decode.Packet) bool {
	var ps decode.Properties
	switch q := p.(type) {
	case *decode.Connect:
		if q.HasPassword {
			return true
		}
		ps = q.Properties
	case *decode.Connack:
		ps = q.Properties
	case *decode.Auth:
		ps = q.Properties
	}
	_, ok := ps.Binary(decode.PropAuthData)
	return ok
}

// altered is the alteration that sent a frame, with the frame's index among its After.
type altered struct {
	a *stream.Alteration
	i int
}

// matchAlter finds the alteration that sent frame in direction dir (nil a when none did).
func (c *Conn) matchAlter(dir stream.Dir, frame []byte) altered {
	q := &c.alters[dir&1]
	if q.Len() == 0 {
		return altered{}
	}
	a, i, _ := q.Match(frame)
	return altered{a, i}
}

// sent reports whether the frame is one the fault altered or sent, not one it passed on as it
// came.
func (al altered) sent() bool { return al.a != nil && al.i >= al.a.Kept }

// drainAlters returns the records of the alterations whose frames were not seen.
func (c *Conn) drainAlters(t time.Time) []Record {
	var out []Record
	for d := range c.alters {
		for _, a := range c.alters[d].Drain() {
			out = append(out, c.faultRecord(stream.Dir(d), t, a, 0))
		}
	}
	return out
}

// original is a record of the packet the sender sent, for the renderers.
func (r *FaultRecord) original() *PacketRecord {
	pr := &PacketRecord{Packet: r.Original, Version: r.Original.Info().Version, Dir: r.Dir}
	if p, ok := r.Original.(*decode.Publish); ok {
		pr.Topic = p.Topic
	}
	return pr
}

// faultText is the text form of a fault record: its line, then what the sender sent when the
// fault rewrote it.
func faultText(b []byte, r *FaultRecord, o TextOptions) []byte {
	b = o.paint(b, ansiDim, r.Time.Format("15:04:05.000000"))
	b = fmt.Appendf(b, " [%d]   fault %s ", r.Conn, r.Dir.Arrow())
	b = o.paint(b, ansiBold+ansiYellow, r.Rule)
	b = append(b, ": "...)
	b = append(b, r.Did...)
	if r.Used != "" {
		b = append(b, "; "...)
		b = append(b, r.Used...)
	}
	b = append(b, '\n')
	if r.Original != nil && len(r.After) > 0 && !r.Own {
		b = append(b, "        was: "...)
		b = packetFields(b, r.original(), o)
		b = append(b, '\n')
	}
	return b
}

// faultJSON writes the keys of a fault record.
func faultJSON(e *jsonObj, r *FaultRecord, o JSONOptions) {
	e.connKeys("fault", r.Time, r.Conn, r.Index, r.Client, r.Server, r.ClientID)
	e.str("dir", r.Dir.String())
	e.str("rule", r.Rule)
	e.str("did", r.Did)
	if r.Used != "" {
		e.str("used", r.Used)
	}
	if r.secret && !o.ShowSecrets {
		e.str("before", Redacted)
		e.str("after", Redacted)
	} else {
		e.str("before", hex.EncodeToString(r.Before))
		e.str("after", hex.EncodeToString(r.After))
	}
	if r.Own {
		e.bool("by_proxy", true)
	}
	if r.Closed {
		e.bool("closed", true)
	}
	if r.Malformed {
		e.bool("malformed", true)
	}
	if r.Original != nil {
		e.key("original")
		oe := jsonObj{b: append(e.b, '{')}
		packetBodyJSON(&oe, r.original(), o)
		e.b = append(oe.b, '}')
	}
}
