package fault

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// Fault is what a rule does to a frame it selected.
type Fault interface {
	// Apply returns what goes on instead of frame f. v holds the negotiated values for f.
	Apply(f *proxy.Frame, v *Values) (Result, error)
}

// Result is what a fault did to a frame.
type Result struct {
	// Skip: the fault does not apply to this frame (it goes on unchanged, and is not counted).
	Skip bool
	Out  [][]byte // the frames to send instead (none: the frame is dropped)
	Did  string   // what was done, for the timeline
	Used string   // the negotiated values a parameter used ("" when none)
	// At, when set, says when each frame or piece of Out may go (the stage waits for it on
	// its clock): a latency, a bandwidth, a slicer's delay.
	At []time.Time
	// Pieces: Out is the frame's bytes cut in pieces, each written on its own (a slicer, a
	// bandwidth), not frames.
	Pieces bool
	// Close ends the connection once Out is sent; Reset ends it with a TCP reset to both
	// sides; Shut closes the sending half towards the receiver (a half-close).
	Close, Reset, Shut bool
	// Own: Out is the proxy's own packets, sent in its own name (a DISCONNECT), not the frame
	// altered; the inspection judges them as the proxy's.
	Own bool
	// Malformed: what is sent instead breaks the packet format on purpose (QoS 3, a reason code
	// the packet does not have).
	Malformed bool
}

func init() {
	register("oversize", "size=EXPR [in=payload|user_property] | body=EXPR", "grow a PUBLISH so the packet is exactly EXPR bytes, by its payload or by a\nUser Property; or grow its payload (body) to exactly EXPR bytes (body=max_payload+1)",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.PUBLISH); err != nil {
				return nil, err
			}
			o := &Oversize{}
			if t, ok := params["in"]; ok {
				switch t.val {
				case "payload":
				case "user_property":
					o.UserProperty = true
				default:
					return nil, t.errorf("in=%s is not payload or user_property", t.val)
				}
				delete(params, "in")
			}
			_, hasBody := params["body"]
			_, hasSize := params["size"]
			var err error
			switch {
			case hasBody && (hasSize || o.UserProperty):
				return nil, errors.New("body= grows the payload to a size: give it without size= or in=")
			case hasBody:
				o.Body, err = takeExpr(params, "body", "")
			default:
				o.Size, err = takeExpr(params, "size", "")
			}
			return o, err
		})
	register("drop", "", "drop the frame (e.g. type=PUBACK)",
		func(r *Rule, params map[string]token) (Fault, error) { return Drop{}, nil })
	register("qos", "to=EXPR", "rewrite a PUBLISH's QoS (default maximum_qos+1)",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.PUBLISH); err != nil {
				return nil, err
			}
			to, err := takeExpr(params, "to", "maximum_qos+1")
			return &QoS{To: to}, err
		})
	register("alias", "to=EXPR", "give a PUBLISH Topic Alias EXPR, topic kept (default topic_alias_maximum+1)",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.PUBLISH); err != nil {
				return nil, err
			}
			to, err := takeExpr(params, "to", "topic_alias_maximum+1")
			return &Alias{To: to}, err
		})
	register("retain", "", "set a PUBLISH's RETAIN flag",
		func(r *Rule, params map[string]token) (Fault, error) {
			return Retain{}, r.onlyTypes(decode.PUBLISH)
		})
	register("disconnect", "reason=CODE [reason_string=TEXT] [server_reference=TEXT]", "send DISCONNECT in the rule's direction instead of the frame\n(after it with after=TYPE), then close the connection; server_reference\n(with 0x9C Use another server, 0x9D Server moved) goes to the client only",
		func(r *Rule, params map[string]token) (Fault, error) {
			d := &Disconnect{}
			var err error
			if d.Reason, err = takeExpr(params, "reason", "0x80"); err != nil {
				return nil, err
			}
			if t, ok := params["reason_string"]; ok {
				d.ReasonString = t.val
				delete(params, "reason_string")
			}
			if t, ok := params["server_reference"]; ok {
				if r.Dirs != S2C {
					return nil, t.errorf("server_reference is the server's: give dir=s2c")
				}
				d.ServerReference = t.val
				delete(params, "server_reference")
			}
			return d, nil
		})
}

// publishOf returns f's PUBLISH for rewriting (a copy), or nil when f is not one that can be
// re-encoded without altering what the fault does not mean to change (a malformed one).
func publishOf(f *proxy.Frame) *decode.Publish {
	p, ok := f.Packet().(*decode.Publish)
	if !ok || malformed(p) {
		return nil
	}
	q := *p
	q.Properties = append(decode.Properties(nil), p.Properties...)
	return &q
}

func malformed(p decode.Packet) bool {
	for _, pr := range p.Info().Problems {
		if errors.Is(pr, decode.ErrMalformed) {
			return true
		}
	}
	return false
}

// encode re-encodes p, as one frame of Out.
func encode(p decode.Packet) ([][]byte, error) {
	b, err := decode.Encode(nil, p)
	if err != nil {
		return nil, fmt.Errorf("re-encoding %s: %w", p.Type(), err)
	}
	return [][]byte{b}, nil
}

// Oversize grows a PUBLISH's payload so that the packet is exactly Size bytes.
// With Body, the payload is grown to exactly Body bytes instead; with UserProperty, the packet
// grows by a User Property ("mqscope-oversize", "xxx…") instead of its payload.
type Oversize struct {
	Size, Body   *Expr
	UserProperty bool
}

func (o *Oversize) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publishOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	if o.Body != nil {
		return o.body(f, p, v)
	}
	size, used, err := o.Size.eval(v)
	if err != nil {
		return Result{}, err
	}
	if o.UserProperty {
		return growProperty(f, p, size, used)
	}
	grow, ok := growBy(len(f.Bytes), p.Info().Header.HeaderLen, size)
	if !ok {
		return Result{Skip: true}, nil
	}
	p.Payload = append(append(make([]byte, 0, len(p.Payload)+grow), p.Payload...), bytes.Repeat([]byte{'x'}, grow)...)
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	did := fmt.Sprintf("PUBLISH grown from %d to %d bytes", len(f.Bytes), len(out[0]))
	if len(out[0]) != size {
		did += fmt.Sprintf(" (no packet has %d)", size)
	}
	return Result{Out: out, Did: did, Used: used}, nil
}

// body grows p's payload to exactly Body bytes.
func (o *Oversize) body(f *proxy.Frame, p *decode.Publish, v *Values) (Result, error) {
	n, used, err := o.Body.eval(v)
	if err != nil {
		return Result{}, err
	}
	if n <= len(p.Payload) {
		return Result{Skip: true}, nil
	}
	from := len(p.Payload)
	p.Payload = append(append(make([]byte, 0, n), p.Payload...), bytes.Repeat([]byte{'x'}, n-from)...)
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	return Result{Out: out, Did: fmt.Sprintf("PUBLISH payload grown from %d to %d bytes (packet %d → %d bytes)", from, n, len(f.Bytes), len(out[0])), Used: used}, nil
}

// growProperty grows p to exactly size bytes by User Properties (MQTT 5; one per 65,535 bytes
// of value), or one byte more where no packet has size bytes, or to the least a User Property
// adds; it skips a packet already as large.
func growProperty(f *proxy.Frame, p *decode.Publish, size int, used string) (Result, error) {
	if p.Version != decode.V5 || size <= len(f.Bytes) {
		return Result{Skip: true}, nil
	}
	const key = "mqscope-oversize"
	props := p.Properties
	try := func(n int) ([]byte, error) {
		p.Properties = props[:len(props):len(props)]
		for first := true; n > 0 || first; first = false { // a value holds at most 65,535 bytes
			k := min(n, 0xFFFF)
			p.Properties = append(p.Properties, decode.Property{ID: decode.PropUserProperty, Str: key, Value: strings.Repeat("x", k)})
			n -= k
		}
		return decode.Encode(nil, p)
	}
	// The property adds 5 bytes and the key before its value, and the length fields may then
	// grow by a byte or two: correct the value's length by what is missing or over, and keep
	// the smallest packet not under size.
	n := max(size-len(f.Bytes)-5-len(key), 0)
	var best []byte
	for k := 0; k < 8; k++ {
		b, err := try(n)
		if err != nil {
			return Result{}, fmt.Errorf("growing by a User Property: %w", err)
		}
		if len(b) >= size && (best == nil || len(b) < len(best)) {
			best = b
		}
		if len(b) == size {
			break
		}
		n = max(n+size-len(b), 0)
	}
	if best == nil {
		return Result{Skip: true}, nil
	}
	did := fmt.Sprintf("PUBLISH grown from %d to %d bytes by a User Property", len(f.Bytes), len(best))
	switch {
	case len(best) == size+1:
		did += fmt.Sprintf(" (no packet has %d)", size)
	case len(best) > size:
		did += fmt.Sprintf(" (a User Property makes it at least %d)", len(best))
	}
	return Result{Out: [][]byte{best}, Did: did, Used: used}, nil
}

// growBy returns how many payload bytes make a frame of n bytes (with a fixed header of hl)
// exactly size bytes, the Remaining Length's own bytes included, or one byte more where no
// packet has size bytes (130: a Remaining Length of 127 makes 129 bytes, of 128 makes 131);
// false when the frame is already as large, or size is over the protocol's largest.
func growBy(n, hl, size int) (int, bool) {
	body := n - hl // what the Remaining Length counts now
	if size <= n {
		return 0, false
	}
	for _, s := range []int{size, size + 1} {
		for l := 1; l <= 4; l++ {
			rl := s - 1 - l
			if rl > body && rl <= decode.MaxVarInt && len(decode.AppendVarInt(nil, uint32(rl))) == l {
				return rl - body, true
			}
		}
	}
	return 0, false
}

// Drop drops the frame.
type Drop struct{}

func (Drop) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	return Result{Did: fmt.Sprintf("%s dropped (%d bytes)", describe(f), len(f.Bytes))}, nil
}

// describe names a frame: its type and packet identifier.
func describe(f *proxy.Frame) string {
	if id, ok := decode.PacketID(f.Packet()); ok && id != 0 {
		return fmt.Sprintf("%s id %d", f.Type, id)
	}
	return f.Type.String()
}

// QoS rewrites a PUBLISH's QoS (a QoS 0 PUBLISH raised gets packet identifier 65535).
type QoS struct{ To *Expr }

func (q *QoS) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publishOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	to, used, err := q.To.eval(v)
	if err != nil {
		return Result{}, err
	}
	if to < 0 || to > 3 || to == int(p.QoS) {
		return Result{Skip: true}, nil
	}
	from := p.QoS
	p.QoS = byte(to)
	switch {
	case to == 0:
		p.PacketID = 0
	case from == 0:
		p.PacketID = 0xFFFF
	}
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	did := fmt.Sprintf("PUBLISH QoS %d rewritten to %d", from, to)
	if to == 3 {
		did += " (malformed: QoS 3 does not exist)"
	}
	return Result{Out: out, Did: did, Used: used, Malformed: to == 3}, nil
}

// Alias gives a PUBLISH the Topic Alias To, keeping its topic (so it maps the alias).
type Alias struct{ To *Expr }

func (a *Alias) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publish5Of(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	to, used, err := aliasParam(a.To, v)
	if err != nil {
		return Result{}, fmt.Errorf("alias: %w", err)
	}
	p.Topic = frameTopic(f, p)
	if p.Topic == "" {
		return Result{Skip: true}, nil // an alias never mapped: nothing to keep
	}
	return aliased(p, to, fmt.Sprintf("PUBLISH to %q given Topic Alias %d", p.Topic, to), used)
}

// Retain sets a PUBLISH's RETAIN flag.
type Retain struct{}

func (Retain) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publishOf(f)
	if p == nil || p.Retain {
		return Result{Skip: true}, nil
	}
	p.Retain = true
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	return Result{Out: out, Did: "PUBLISH RETAIN set", Used: fmt.Sprintf("retain_available=%d", v.RetainAvailable)}, nil
}

// Disconnect sends DISCONNECT with Reason (and ReasonString) in the rule's direction, instead
// of the frame (or after it), then ends the connection; in MQTT 3.1.1, where only the client
// sends DISCONNECT and it has no reason, the connection is closed without one towards the
// client.
type Disconnect struct {
	Reason          *Expr
	ReasonString    string
	ServerReference string // to the client only
}

func (*Disconnect) afterOK() {}

func (d *Disconnect) Apply(f *proxy.Frame, v *Values) (Result, error) {
	rc, used, err := d.Reason.eval(v)
	if err != nil {
		return Result{}, err
	}
	if rc < 0 || rc > 0xFF {
		return Result{}, fmt.Errorf("disconnect: reason %d is not a byte", rc)
	}
	ver := f.State.Version()
	if ver == 0 {
		ver = f.Packet().Info().Version
	}
	if ver != decode.V5 {
		if f.Dir == stream.S2C { // to the client: 3.1.1 has no server DISCONNECT
			return Result{Did: "connection closed (MQTT " + ver.String() + ": no server DISCONNECT)", Close: true}, nil
		}
		b, _ := decode.Encode(nil, &decode.Disconnect{Base: decode.Base{Version: ver}})
		return Result{Out: [][]byte{b}, Did: "DISCONNECT sent, connection closed", Close: true, Own: true}, nil
	}
	p := &decode.Disconnect{Base: decode.Base{Version: decode.V5}, ReasonCode: decode.ReasonCode(rc), HasReason: true}
	if d.ReasonString != "" {
		p.Properties = append(p.Properties, decode.StrProp(decode.PropReasonString, d.ReasonString))
	}
	if d.ServerReference != "" {
		p.Properties = append(p.Properties, decode.StrProp(decode.PropServerReference, d.ServerReference))
	}
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	did := fmt.Sprintf("DISCONNECT 0x%02X %s sent", rc, decode.ReasonName(decode.V5, decode.DISCONNECT, decode.ReasonCode(rc)))
	bad := !decode.ReasonCode(rc).AllowedIn(decode.DISCONNECT)
	if bad {
		did = fmt.Sprintf("DISCONNECT 0x%02X sent (malformed: not a DISCONNECT reason code)", rc)
	}
	if d.ReasonString != "" {
		did += fmt.Sprintf(" (%q)", d.ReasonString)
	}
	if d.ServerReference != "" {
		did += fmt.Sprintf(", Server Reference %q", d.ServerReference)
	}
	return Result{Out: out, Did: did + ", connection closed", Used: used, Close: true, Own: true, Malformed: bad}, nil
}
