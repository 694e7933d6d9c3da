package fault

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/mqscope/mqscope/proxy"
)

// Values are what a parameter expression may use: the limits the receiver of the frame's
// direction granted (the standard's defaults before CONNACK), and the frame itself.
type Values struct {
	MaxPacketSize     int `expr:"max_packet_size"` // 0: no limit but the protocol's
	ReceiveMaximum    int `expr:"receive_maximum"`
	TopicAliasMaximum int `expr:"topic_alias_maximum"`
	MaximumQoS        int `expr:"maximum_qos"`
	RetainAvailable   int `expr:"retain_available"` // 1 or 0
	InFlight          int `expr:"in_flight"`        // QoS 1 and 2 PUBLISH the sender has unacknowledged
	Aliases           int `expr:"aliases"`          // topic aliases the sender has mapped
	Size              int `expr:"size"`             // the frame's size, fixed header included
	// MaxPayload is the largest PUBLISH payload (message body) the broker profile in use
	// accepts (--profile: apsaramq 64 KB in a 128 KB packet); 0 when no profile sets one.
	MaxPayload int `expr:"max_payload"`
}

// valueNames are the names of Values, for messages.
var valueNames = []string{"max_packet_size", "receive_maximum", "topic_alias_maximum", "maximum_qos",
	"retain_available", "in_flight", "aliases", "size", "max_payload"}

// valuesOf reads f's negotiated state.
func valuesOf(f *proxy.Frame) Values {
	l := f.State.Limits(f.Dir)
	return Values{MaxPacketSize: l.MaximumPacketSize, ReceiveMaximum: l.ReceiveMaximum,
		TopicAliasMaximum: l.TopicAliasMaximum, MaximumQoS: l.MaximumQoS, RetainAvailable: b2i(l.RetainAvailable),
		InFlight: f.State.InFlight(f.Dir), Aliases: f.State.Aliases(f.Dir), Size: len(f.Bytes),
		MaxPayload: f.State.MaxPayload()}
}

func (v *Values) get(name string) int {
	switch name {
	case "max_packet_size":
		return v.MaxPacketSize
	case "receive_maximum":
		return v.ReceiveMaximum
	case "topic_alias_maximum":
		return v.TopicAliasMaximum
	case "maximum_qos":
		return v.MaximumQoS
	case "retain_available":
		return v.RetainAvailable
	case "in_flight":
		return v.InFlight
	case "aliases":
		return v.Aliases
	case "max_payload":
		return v.MaxPayload
	}
	return v.Size
}

// Expr is an integer parameter: a number or an expression of Values, evaluated per frame.
type Expr struct {
	src   string
	prog  *vm.Program // nil for a constant
	konst int
	uses  []string // the Values it reads
}

var wordRE = regexp.MustCompile(`[a-z_]+`)

// compileExpr compiles src (decimal, 0x hex, or an expression of Values).
func compileExpr(src string) (*Expr, error) {
	if n, err := strconv.ParseInt(src, 0, 64); err == nil {
		return &Expr{src: src, konst: int(n)}, nil
	}
	prog, err := expr.Compile(src, expr.Env(Values{}), expr.AsInt())
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "unknown name") {
			msg += "\nnames: " + strings.Join(valueNames, ", ")
		}
		return nil, fmt.Errorf("expression %q: %s", src, msg)
	}
	e := &Expr{src: src, prog: prog}
	for _, w := range wordRE.FindAllString(src, -1) {
		for _, n := range valueNames {
			if w == n && !contains(e.uses, n) {
				e.uses = append(e.uses, n)
			}
		}
	}
	return e, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// eval returns the value for the frame's values, and what it used ("max_packet_size+1 = 201
// with max_packet_size=200"; "" for a constant).
func (e *Expr) eval(v *Values) (int, string, error) {
	if e.prog == nil {
		return e.konst, "", nil
	}
	out, err := expr.Run(e.prog, v)
	if err != nil {
		return 0, "", fmt.Errorf("evaluating %q: %w", e.src, err)
	}
	n := out.(int)
	used := make([]string, len(e.uses))
	for i, u := range e.uses {
		used[i] = u + "=" + strconv.Itoa(v.get(u))
	}
	return n, fmt.Sprintf("%s = %d with %s", e.src, n, strings.Join(used, ", ")), nil
}

func (e *Expr) String() string { return e.src }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
