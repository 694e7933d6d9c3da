package main

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/proxy/fault"
	"github.com/mqscope/mqscope/ui"
)

// proxyActions are the UI's actions on the proxy's live connections: fault rules added to a
// connection at run time, the proxy's DISCONNECT and reset, and the intercept.
type proxyActions struct {
	srv *proxy.Server
	in  *proxy.Inspector // nil: no negotiated state to check a DISCONNECT against
	set *fault.Set
	ic  *proxy.Intercept
	n   atomic.Int64 // rules added, to number them
	// async runs what may wait on a connection (closing it) off the UI's goroutine.
	async func(func())
}

var _ ui.Actions = (*proxyActions)(nil)

func (a *proxyActions) Live() bool  { return true }
func (a *proxyActions) Why() string { return "" }

// paletteRules are the rules the palette offers for the faults whose parameters have a useful
// value from the negotiated state; the others are offered as their grammar, to fill in.
var paletteRules = map[string]string{
	"oversize":   "oversize size=max_packet_size+1 count=1",
	"alias":      "alias to=topic_alias_maximum+1 count=1",
	"qos":        "qos to=maximum_qos+1 count=1",
	"drop":       "drop type=PUBACK dir=s2c count=1",
	"retain":     "retain count=1",
	"disconnect": `disconnect dir=s2c reason=0x89 reason_string="busy" after=PUBLISH count=1`,
	"connack":    "connack receive_maximum=1",
}

// Faults lists every fault action the proxy has, with a rule to start from.
func (a *proxyActions) Faults() []ui.FaultSpec {
	var out []ui.FaultSpec
	for _, ai := range fault.Catalog() {
		rule, ok := paletteRules[ai.Name]
		if !ok {
			rule = strings.TrimSpace(ai.Name + " " + ai.Params)
		}
		out = append(out, ui.FaultSpec{Name: ai.Name, Params: ai.Params, Help: ai.Help, Rule: rule})
	}
	return out
}

// Fault adds rule to connection conn's own rules.
func (a *proxyActions) Fault(conn int, rule string) error {
	r, err := fault.Parse(rule, int(a.n.Add(1)))
	if err != nil {
		return err
	}
	return a.set.AddConn(conn, r)
}

// open returns connection id's status, or an error when it is not open.
func (a *proxyActions) open(id int) (proxy.ConnStatus, error) {
	for _, st := range a.srv.Conns() {
		if st.ID == id {
			return st, nil
		}
	}
	return proxy.ConnStatus{}, fmt.Errorf("connection %d: %w", id, proxy.ErrNoConn)
}

// Disconnect sends the device DISCONNECT reason (MQTT 5; a 3.1.1 device has none from the
// server) and closes the connection; the broker sees the connection close, as after a lost
// device (it publishes the Will). The close goes on after Disconnect returns: its record says
// what was done.
func (a *proxyActions) Disconnect(conn int, reason decode.ReasonCode, text string) error {
	if _, err := a.open(conn); err != nil {
		return err
	}
	maxPacket := 0
	if a.in != nil {
		if s, ok := a.in.Snapshot(conn); ok && s.Requested.MaximumPacketSize != nil {
			maxPacket = int(*s.Requested.MaximumPacketSize)
		}
	}
	if err := proxy.CheckDisconnect(reason, text, maxPacket); err != nil {
		return err
	}
	a.async(func() { a.srv.CloseConn(conn, &reason, text) })
	return nil
}

// Reset ends conn with a TCP reset to both sides.
func (a *proxyActions) Reset(conn int) error {
	if _, err := a.open(conn); err != nil {
		return err
	}
	a.async(func() { a.srv.ResetConn(conn) })
	return nil
}

func (a *proxyActions) Intercept(filter string) error { return a.ic.SetFilter(filter) }

func (a *proxyActions) Held() []ui.Held {
	hs := a.ic.Held()
	out := make([]ui.Held, len(hs))
	for i, h := range hs {
		out[i] = ui.Held{ID: h.ID, Conn: h.Conn, Dir: h.Dir, Time: h.Time, Raw: h.Raw, Edited: h.Edited}
	}
	return out
}

func (a *proxyActions) Forward(id uint64) error { return a.ic.Forward(id) }
func (a *proxyActions) ForwardAll() error       { a.ic.ForwardAll(); return nil }
func (a *proxyActions) Drop(id uint64) error    { return a.ic.Drop(id) }

// Edit replaces held packet id with raw (the screens re-encode field edits and warn).
func (a *proxyActions) Edit(id uint64, raw []byte) error {
	_, err := a.ic.Replace(id, raw)
	return err
}

func (a *proxyActions) Notify(f func()) { a.ic.Notify(f) }
