package fault

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// action is one fault a rule may name: its parameters and sentence for the grammar in --help,
// and how a rule's parameters make it.
type action struct {
	name   string
	params string // "size=EXPR"
	help   string // lines after the first are indented under it
	make   func(r *Rule, params map[string]token) (Fault, error)
}

// actions are the faults by name; each fault's file registers its own (in init), so that
// faults are added without touching a shared list.
var actions = map[string]action{}

func register(name, params, help string, mk func(r *Rule, params map[string]token) (Fault, error)) {
	if _, dup := actions[name]; dup {
		panic("fault: action " + name + " registered twice")
	}
	actions[name] = action{name: name, params: params, help: help, make: mk}
}

var keyRE = regexp.MustCompile(`[a-z_]+=`)

// keys says which keys a rule with this action takes, for messages.
func (a action) keys() string {
	var own []string
	for _, k := range keyRE.FindAllString(a.params, -1) {
		own = append(own, strings.TrimSuffix(k, "="))
	}
	s := a.name + " takes no keys of its own"
	if strings.Contains(a.params, "KEY=") {
		s = a.name + " takes " + a.params
	} else if len(own) > 0 {
		s = a.name + " takes " + strings.Join(own, ", ")
	}
	return s + "; every rule takes " + strings.Join(selectorKeys, ", ")
}

// owns reports whether key is one of the action's own keys (named in its parameters).
func (a action) owns(key string) bool {
	return slices.Contains(keyRE.FindAllString(a.params, -1), key+"=")
}

// unknown returns the first of toks left in params whose key a's parameters do not name (when
// they name their keys).
func (a action) unknown(toks []token, params map[string]token) (token, bool) {
	if strings.Contains(a.params, "KEY=") {
		return token{}, false
	}
	named := keyRE.FindAllString(a.params, -1)
	for _, t := range toks {
		if _, left := params[t.key]; left && !slices.Contains(named, t.key+"=") {
			return t, true
		}
	}
	return token{}, false
}

// actionNames lists the actions, sorted, for messages.
func actionNames() string {
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Usage is the rule grammar, for --help.
func Usage() string {
	var b strings.Builder
	b.WriteString("A fault rule is an action and key=value pairs (values with spaces in double quotes):\n")
	names := make([]string, 0, len(actions))
	for n := range actions {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a := actions[n]
		head := strings.TrimSpace(a.name + " " + a.params)
		lines := strings.Split(a.help, "\n")
		if len(head) > 27 {
			fmt.Fprintf(&b, "  %s\n  %-27s  %s\n", head, "", lines[0])
		} else {
			fmt.Fprintf(&b, "  %-27s  %s\n", head, lines[0])
		}
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "  %-27s  %s\n", "", l)
		}
	}
	b.WriteString(selectorUsage)
	return b.String()
}

const selectorUsage = `Selectors: dir=c2s|s2c|both type=PUBLISH[,PUBACK...] topic=FILTER client=GLOB qos=N
  retain=0|1 reason_code=CODE (frames carrying it) nth=N (only the nth match) every=N
  prob=P (0..1, seeded) count=N (at most N times) start=DURATION (after the connection
  opened, or since=TYPE[,TYPE] passed) for=DURATION; name=NAME; counting is per connection.
EXPR is a number or an expression of what the receiver granted: max_packet_size,
  receive_maximum, topic_alias_maximum, maximum_qos, retain_available, in_flight, aliases, size,
  max_payload (the --profile's message limit, 0 without one).`
