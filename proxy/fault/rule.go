// Package fault injects MQTT-aware faults into the proxy's connections: a Rule selects frames
// (by type, topic, client, QoS, count, chance) in a direction and applies a Fault to them, with
// parameters taken from what the receiver negotiated (size=max_packet_size+1).
package fault

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// ErrRule is the category of rule parse errors.
var ErrRule = errors.New("fault rule")

// Dirs says which directions a rule applies to.
type Dirs uint8

// The directions of a rule.
const (
	C2S  Dirs = 1 << stream.C2S
	S2C  Dirs = 1 << stream.S2C
	Both      = C2S | S2C
)

func (d Dirs) has(dir stream.Dir) bool { return d&(1<<dir) != 0 }

func (d Dirs) String() string {
	switch d {
	case C2S:
		return "c2s"
	case S2C:
		return "s2c"
	}
	return "both"
}

// Selector chooses the frames a rule applies to. Counting (Nth, Every, Count) is per connection,
// over the frames that pass the other conditions.
type Selector struct {
	Types  []decode.Type // any when empty
	Topic  string        // a topic filter (wildcards allowed) matched against the PUBLISH topic, resolved through its alias; "" for any
	Client string        // a glob (path.Match) on the CONNECT's Client Identifier; "" for any
	QoS    int           // the PUBLISH QoS; -1 for any
	Nth    int           // only the nth matching frame (1-based); 0 for any
	Every  int           // every nth matching frame; 0 for each
	Prob   float64       // the chance per matching frame, drawn from the pipeline's random source; 0 means 1
	Count  int           // at most this many times per connection; 0 for no limit
	Retain *bool         // the PUBLISH RETAIN flag; nil for any
	// Reason selects the frames carrying this reason code (CONNACK, the acknowledgements, SUBACK
	// and UNSUBACK among theirs, DISCONNECT, AUTH; an MQTT 5 acknowledgement that leaves its
	// reason code out carries 0x00); nil for any.
	Reason *decode.ReasonCode
	// The rule's time window, on the pipeline's clock: it opens Start after the connection
	// opened, or after the first packet of a type in Since passed the proxy (in either
	// direction), and stays open For (0: until the connection ends).
	Start time.Duration
	Since []decode.Type
	For   time.Duration
}

// timed reports whether the selector has a time window.
func (s *Selector) timed() bool { return s.Start > 0 || s.For > 0 || len(s.Since) > 0 }

// Rule is one fault rule.
type Rule struct {
	Name  string // as given with name=, else "#N action"
	Text  string // the rule as written
	Dirs  Dirs
	Sel   Selector
	Fault Fault
	// After forwards the selected frame before the fault acts (a disconnect after a PUBLISH).
	After bool

	action string // the action's name
	named  bool   // Name was given with name=
}

// token is one word of a rule, with where it was written: its column (1-based) in a rule on
// one line, or its line and column in a YAML file (yaml.go).
type token struct {
	key, val  string
	line, col int
	hasVal    bool
}

// errorf is an error at t.
func (t token) errorf(format string, args ...any) error {
	return &PosError{Line: t.line, Col: t.col, Err: fmt.Errorf(format, args...)}
}

// PosError is an error at a place in a rule (Line 0: a rule on one line) or a YAML file of
// rules.
type PosError struct {
	Line, Col int
	Err       error
}

func (e *PosError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("column %d: %v", e.Col, e.Err)
	}
	return fmt.Sprintf("%d:%d: %v", e.Line, e.Col, e.Err)
}

func (e *PosError) Unwrap() error { return e.Err }

// Is makes every PosError an ErrRule.
func (e *PosError) Is(target error) bool { return target == ErrRule }

// tokenize splits a rule into words; a value may be "quoted" with \" and \\ escapes.
func tokenize(s string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return toks, nil
		}
		t := token{col: i + 1}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		t.key = s[start:i]
		if i < len(s) && s[i] == '=' {
			t.hasVal = true
			i++
			if i < len(s) && s[i] == '"' {
				var b strings.Builder
				i++
				for {
					if i >= len(s) {
						return nil, t.errorf("unterminated quoted value of %s", t.key)
					}
					c := s[i]
					if c == '"' {
						i++
						break
					}
					if c == '\\' && i+1 < len(s) {
						i++
						c = s[i]
					}
					b.WriteByte(c)
					i++
				}
				t.val = b.String()
			} else {
				start := i
				for i < len(s) && s[i] != ' ' && s[i] != '\t' {
					i++
				}
				t.val = s[start:i]
			}
		}
		if t.key == "" {
			return nil, t.errorf("a value without a key")
		}
		toks = append(toks, t)
	}
}

// Parse parses one rule; n numbers it in its default name.
func Parse(s string, n int) (*Rule, error) {
	r, err := parse(s, n)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrRule, s, err)
	}
	return r, nil
}

func parse(s string, n int) (*Rule, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("empty rule: give an action such as oversize, drop or disconnect")
	}
	return parseTokens(toks, s, n)
}

// parseTokens makes the rule of toks, the first its action; text is the rule as written.
func parseTokens(toks []token, text string, n int) (*Rule, error) {
	var err error
	act := toks[0]
	if act.hasVal {
		return nil, act.errorf("a rule starts with its action (%s), not %s=", actionNames(), act.key)
	}
	r := &Rule{Name: fmt.Sprintf("#%d %s", n, act.key), Text: text, Dirs: Both, Sel: Selector{QoS: -1}, action: act.key}
	// The action's own keys (an action may name a selector's key as its own: flood count=).
	params := map[string]token{}
	given := map[string]bool{}
	own := actions[act.key].owns
	for _, t := range toks[1:] {
		if !t.hasVal {
			return nil, t.errorf("%q has no value (write key=value)", t.key)
		}
		if given[t.key] {
			return nil, t.errorf("%s given twice", t.key)
		}
		given[t.key] = true
		if own(t.key) {
			err = errUnknownKey
		} else {
			err = r.selectorKey(t)
		}
		if err != errUnknownKey {
			if err != nil {
				return nil, t.errorf("%s: %w", t.key, err)
			}
			continue
		}
		params[t.key] = t
	}
	a, ok := actions[act.key]
	if !ok {
		return nil, act.errorf("unknown action %q (%s)", act.key, actionNames())
	}
	if r.Fault, err = a.make(r, params); err != nil {
		if t, ok := a.unknown(toks[1:], params); ok {
			// A misspelt key is likelier the cause than what the action misses.
			return nil, t.errorf("%s does not apply to %s (%s)", t.key, act.key, a.keys())
		}
		return nil, err
	}
	for _, t := range toks[1:] { // the first left, as written
		if _, left := params[t.key]; left {
			return nil, t.errorf("%s does not apply to %s (%s)", t.key, act.key, a.keys())
		}
	}
	if r.After {
		if _, ok := r.Fault.(interface{ afterOK() }); !ok {
			return nil, fmt.Errorf("after= applies to disconnect, reset and half_close only")
		}
	}
	return r, nil
}

var errUnknownKey = errors.New("unknown key")

// selectorKeys are the keys selectorKey reads, for messages.
var selectorKeys = []string{"name", "dir", "type", "after", "topic", "client", "qos", "retain", "reason_code", "nth", "every", "count", "prob", "start", "since", "for"}

// selectorKey reads a key common to every rule.
func (r *Rule) selectorKey(t token) error {
	var err error
	switch t.key {
	case "name":
		if t.val == "" || strings.HasPrefix(t.val, "#") || strings.ContainsAny(t.val, "/ \t") {
			return fmt.Errorf("%q: a name is a word without /, and does not begin with # (kept for rules without one)", t.val)
		}
		r.Name, r.named = t.val, true
	case "dir":
		switch t.val {
		case "c2s":
			r.Dirs = C2S
		case "s2c":
			r.Dirs = S2C
		case "both":
			r.Dirs = Both
		default:
			return fmt.Errorf("%q is not c2s, s2c or both", t.val)
		}
	case "type", "after", "since":
		var ts []decode.Type
		for _, name := range strings.Split(t.val, ",") {
			typ, ok := typeNamed(name)
			if !ok {
				return fmt.Errorf("unknown packet type %q", name)
			}
			ts = append(ts, typ)
		}
		if t.key == "since" {
			r.Sel.Since = append(r.Sel.Since, ts...)
			break
		}
		r.Sel.Types = append(r.Sel.Types, ts...)
		r.After = r.After || t.key == "after"
	case "topic":
		if msg, _ := decode.FilterProblem(t.val); msg != "" {
			return fmt.Errorf("topic filter %q: %s", t.val, msg)
		}
		r.Sel.Topic = t.val
	case "client":
		if _, err := path.Match(t.val, ""); err != nil {
			return fmt.Errorf("client glob %q: %w", t.val, err)
		}
		r.Sel.Client = t.val
	case "qos":
		r.Sel.QoS, err = intIn(t.val, 0, 3)
	case "nth":
		r.Sel.Nth, err = intIn(t.val, 1, 1<<31-1)
	case "every":
		r.Sel.Every, err = intIn(t.val, 1, 1<<31-1)
	case "count":
		r.Sel.Count, err = intIn(t.val, 1, 1<<31-1)
	case "retain":
		var n int
		n, err = intIn(t.val, 0, 1)
		b := n == 1
		r.Sel.Retain = &b
	case "reason_code": // not reason=, the parameter of connack and disconnect
		var n int
		n, err = intIn(t.val, 0, 0xFF)
		rc := decode.ReasonCode(n)
		r.Sel.Reason = &rc
	case "start", "for":
		var d time.Duration
		d, err = time.ParseDuration(t.val)
		switch {
		case err != nil:
			err = fmt.Errorf("%q is not a duration such as 500ms or 2s", t.val)
		case d < 0 || (d == 0 && t.key == "for"):
			err = fmt.Errorf("%s is not a positive duration", t.val)
		case t.key == "start":
			r.Sel.Start = d
		default:
			r.Sel.For = d
		}
	case "prob":
		r.Sel.Prob, err = strconv.ParseFloat(t.val, 64)
		if err == nil && (r.Sel.Prob <= 0 || r.Sel.Prob > 1) {
			err = fmt.Errorf("%s is not in (0, 1]", t.val)
		}
	default:
		return errUnknownKey
	}
	return err
}

func intIn(s string, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil || int(n) < lo || int(n) > hi {
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
	}
	return int(n), nil
}

func typeNamed(name string) (decode.Type, bool) {
	for t := decode.CONNECT; t <= decode.AUTH; t++ {
		if strings.EqualFold(t.String(), name) {
			return t, true
		}
	}
	return 0, false
}

// takeExpr removes key from params and compiles it; def when absent ("" for required).
func takeExpr(params map[string]token, key, def string) (*Expr, error) {
	t, ok := params[key]
	if !ok {
		if def == "" {
			return nil, fmt.Errorf("%s= is required", key)
		}
		return compileExpr(def)
	}
	delete(params, key)
	e, err := compileExpr(t.val)
	if err != nil {
		return nil, t.errorf("%s: %w", key, err)
	}
	return e, nil
}

// onlyTypes restricts r to typ, or checks the types given are typ.
func (r *Rule) onlyTypes(typ ...decode.Type) error {
	if len(r.Sel.Types) == 0 {
		r.Sel.Types = typ
		return nil
	}
	for _, t := range r.Sel.Types {
		if !contains(typeNames(typ), t.String()) {
			return fmt.Errorf("%s does not apply to %s", strings.Fields(r.Name)[len(strings.Fields(r.Name))-1], t)
		}
	}
	return nil
}

func typeNames(ts []decode.Type) []string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return s
}

// matchTopic reports whether topic matches the filter (MQTT wildcards + and #).
func matchTopic(filter, topic string) bool { return decode.TopicMatches(filter, topic) }

// frameTopic is the topic of a PUBLISH, resolved through its alias.
func frameTopic(f *proxy.Frame, p *decode.Publish) string {
	if p.Topic != "" {
		return p.Topic
	}
	if a, ok := p.Properties.TopicAlias(); ok {
		t, _ := f.State.Alias(f.Dir, a)
		return t
	}
	return ""
}
