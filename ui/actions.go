package ui

import (
	"errors"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// Actions are what the screens can do to live connections: mqscope proxy implements them
// (cmd/mqscope wires its stages and control to this interface, so that package ui imports
// neither capture nor proxy). The screens call every method on the UI goroutine; none may
// block for long.
//
// On a capture file, or with --readonly, Live is false and every action is refused: the
// screens then show Why instead of the action's dialog.
type Actions interface {
	// Live reports whether actions can be taken now.
	Live() bool
	// Why says why actions cannot be taken when Live is false ("a capture file is not a live
	// connection", "--readonly"); "" when they can.
	Why() string

	// Faults lists what the fault palette (!) offers, in the order shown.
	Faults() []FaultSpec
	// Fault applies a fault rule, in the grammar of mqscope proxy --fault (e.g.
	// "oversize size=max_packet_size+1 type=PUBLISH dir=c2s count=1"), to connection conn from
	// now on. A rule that does not parse is an error saying what and where.
	Fault(conn int, rule string) error
	// Disconnect sends a DISCONNECT with reason code and reason string (may be "") from the
	// proxy to both peers of conn, then closes the connection.
	Disconnect(conn int, reason decode.ReasonCode, text string) error
	// Reset ends conn with a TCP RST to both peers.
	Reset(conn int) error

	// Intercept holds, from now on, the packets matching filter (the --filter language) before
	// they are forwarded; "" stops intercepting (held packets stay held until released).
	Intercept(filter string) error
	// Held returns the packets held now, oldest first.
	Held() []Held
	// Forward releases held packet id (as edited, if it was); ForwardAll releases every one.
	Forward(id uint64) error
	ForwardAll() error
	// Drop discards held packet id: neither peer gets it.
	Drop(id uint64) error
	// Edit replaces the bytes of held packet id with raw, a whole packet (fixed header
	// included, lengths correct: the screens re-encode field edits). It is forwarded later by
	// Forward.
	Edit(id uint64, raw []byte) error
	// Notify sets f to be called, from any goroutine, when the held packets change (one is
	// held, forwarded, dropped); the screens then call Held again.
	Notify(f func())
}

// FaultSpec is one fault of the palette: a rule of the proxy's --fault grammar.
type FaultSpec struct {
	Name string // the rule's action: "oversize", "disconnect"...
	// Params is the parameters' grammar ("size=EXPR"), Help the sentence of --help.
	Params, Help string
	// Rule is the rule offered to the user to edit before applying it, its parameters filled
	// with expressions of the negotiated values ("oversize size=max_packet_size+1").
	Rule string
}

// Held is a packet intercepted and held by the proxy.
type Held struct {
	ID   uint64
	Conn int
	Dir  stream.Dir
	Time time.Time
	// Raw is the packet's bytes as they will be forwarded (edited, when Edited).
	Raw    []byte
	Edited bool
}

// ErrNotLive is what a refused action returns (wrapped with the reason).
var ErrNotLive = errors.New("no live connection to act on")

// NoActions are the actions of a source that is not live, or of --readonly: every one is
// refused with Reason.
type NoActions struct{ Reason string }

// Live implements Actions.
func (NoActions) Live() bool { return false }

// Why implements Actions.
func (n NoActions) Why() string { return n.Reason }

func (n NoActions) refuse() error { return notLive{n.Reason} }

// Faults implements Actions: none.
func (NoActions) Faults() []FaultSpec { return nil }

// Fault implements Actions.
func (n NoActions) Fault(int, string) error { return n.refuse() }

// Disconnect implements Actions.
func (n NoActions) Disconnect(int, decode.ReasonCode, string) error { return n.refuse() }

// Reset implements Actions.
func (n NoActions) Reset(int) error { return n.refuse() }

// Intercept implements Actions.
func (n NoActions) Intercept(string) error { return n.refuse() }

// Held implements Actions: none.
func (NoActions) Held() []Held { return nil }

// Forward implements Actions.
func (n NoActions) Forward(uint64) error { return n.refuse() }

// ForwardAll implements Actions.
func (n NoActions) ForwardAll() error { return n.refuse() }

// Drop implements Actions.
func (n NoActions) Drop(uint64) error { return n.refuse() }

// Edit implements Actions.
func (n NoActions) Edit(uint64, []byte) error { return n.refuse() }

// Notify implements Actions: nothing is ever held.
func (NoActions) Notify(func()) {}

// notLive is ErrNotLive with the reason.
type notLive struct{ why string }

func (e notLive) Error() string { return ErrNotLive.Error() + ": " + e.why }
func (e notLive) Unwrap() error { return ErrNotLive }

// Why texts of the sources that cannot act.
const (
	WhyFile     = "a capture file is not a live connection: actions need mqscope proxy --ui"
	WhyReadOnly = "--readonly: actions are disabled"
	WhyCapture  = "a live capture only watches: actions need mqscope proxy --ui"
)
