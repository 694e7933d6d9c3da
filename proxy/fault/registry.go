package fault

import (
	"fmt"
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
  nth=N (only the nth match) every=N prob=P (0..1, seeded) count=N (at most N times)
  name=NAME; counting is per connection.
EXPR is a number or an expression of what the receiver granted: max_packet_size,
  receive_maximum, topic_alias_maximum, maximum_qos, retain_available, in_flight, aliases, size.`
