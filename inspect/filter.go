package inspect

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/mqscope/mqscope/decode"
)

// Filter selects packet records with an expression over their fields, in the language of
// github.com/expr-lang/expr. The fields are those of the JSON lines (see FilterFields):
//
//	type == "PUBLISH" && topic startsWith "sensors/" && qos > 0
//	notes.rule == "MQTT-3.3.2-8"      // any note has that rule
//	conn == 3 && dir == "s2c" && reason_code >= 0x80
//
// notes.rule, notes.level and notes.text stand for the field of every note: a comparison
// (==, contains, startsWith, endsWith, matches, in, <, >, ...) is true when it holds for any
// note, and != is true when no note equals the value.
type Filter struct {
	src  string
	prog *vm.Program
}

// FilterFields lists the names a filter expression can use, with their types.
var FilterFields = []struct{ Name, Type, Doc string }{
	{"kind", "string", `"packet"`},
	{"time", "time", "when the packet was seen"},
	{"conn", "int", "connection id"},
	{"index", "int", "packet number within the connection, from 1"},
	{"client", "string", `client address "ip:port"`},
	{"server", "string", `server address "ip:port"`},
	{"client_id", "string", "the connection's client identifier"},
	{"dir", "string", `"c2s" or "s2c"`},
	{"version", "int", "3, 4 or 5"},
	{"type", "string", `the standard's name of the packet type, e.g. "PUBLISH"`},
	{"size", "int", "bytes on the wire, fixed header included"},
	{"packet_id", "int", "0 when none"},
	{"qos", "int", "PUBLISH QoS"},
	{"retain", "bool", "PUBLISH RETAIN"},
	{"dup", "bool", "PUBLISH DUP"},
	{"topic", "string", "PUBLISH topic, resolved through aliases"},
	{"topic_alias", "int", "0 when none"},
	{"payload_size", "int", "PUBLISH payload bytes"},
	{"payload", "string", "PUBLISH payload when it is UTF-8, else empty"},
	{"reason_code", "int", "-1 when the packet has none"},
	{"reason", "string", "the reason code's name"},
	{"reason_codes", "[]int", "SUBACK and UNSUBACK reason codes"},
	{"filters", "[]string", "SUBSCRIBE and UNSUBSCRIBE topic filters"},
	{"properties", "map", `properties by snake_case name, e.g. properties.content_type`},
	{"user_properties", "map[string]string", "User Properties (the last value of a repeated name)"},
	{"notes", "[]note", "findings: notes.level, notes.rule, notes.text"},
	{"level", "string", `the most severe note's level, "" when none`},
}

// filterEnv is what a filter expression sees.
type filterEnv struct {
	Kind           string            `expr:"kind"`
	Time           time.Time         `expr:"time"`
	Conn           int               `expr:"conn"`
	Index          int               `expr:"index"`
	Client         string            `expr:"client"`
	Server         string            `expr:"server"`
	ClientID       string            `expr:"client_id"`
	Dir            string            `expr:"dir"`
	Version        int               `expr:"version"`
	Type           string            `expr:"type"`
	Size           int               `expr:"size"`
	PacketID       int               `expr:"packet_id"`
	QoS            int               `expr:"qos"`
	Retain         bool              `expr:"retain"`
	Dup            bool              `expr:"dup"`
	Topic          string            `expr:"topic"`
	TopicAlias     int               `expr:"topic_alias"`
	PayloadSize    int               `expr:"payload_size"`
	Payload        string            `expr:"payload"`
	ReasonCode     int               `expr:"reason_code"`
	Reason         string            `expr:"reason"`
	ReasonCodes    []int             `expr:"reason_codes"`
	Filters        []string          `expr:"filters"`
	Properties     map[string]any    `expr:"properties"`
	UserProperties map[string]string `expr:"user_properties"`
	Notes          []filterNote      `expr:"notes"`
	Level          string            `expr:"level"`
}

type filterNote struct {
	Level string `expr:"level"`
	Rule  string `expr:"rule"`
	Text  string `expr:"text"`
}

// ErrFilter is the category of filter compile errors.
var ErrFilter = errors.New("filter")

// CompileFilter compiles a filter expression. Errors show where in the expression the problem is.
func CompileFilter(src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return &Filter{src: src}, nil
	}
	prog, err := expr.Compile(src, expr.Env(filterEnv{}), expr.AsBool(), expr.Patch(&notesPatcher{}))
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "unknown name"):
			names := make([]string, len(FilterFields))
			for i, f := range FilterFields {
				names[i] = f.Name
			}
			msg += "\nfields: " + strings.Join(names, ", ")
		case strings.Contains(msg, "expected bool"):
			msg += ` (a filter is a condition, e.g. topic == "a/b")`
		}
		return nil, fmt.Errorf("%w: %s", ErrFilter, msg)
	}
	return &Filter{src: src, prog: prog}, nil
}

// String returns the filter's source.
func (f *Filter) String() string { return f.src }

// Match reports whether the record matches. An empty filter matches everything; an error while
// evaluating (which a compiled filter does not normally produce) counts as no match.
func (f *Filter) Match(r *PacketRecord) bool {
	if f == nil || f.prog == nil {
		return true
	}
	env := envOf(r)
	out, err := expr.Run(f.prog, &env)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

func envOf(r *PacketRecord) filterEnv {
	p := r.Packet
	e := filterEnv{Kind: "packet", Time: r.Time, Conn: r.Conn, Index: r.Index, Client: r.Client, Server: r.Server,
		ClientID: r.ClientID, Dir: r.Dir.String(), Version: int(r.Version), Type: p.Type().String(), Size: r.Size(),
		Topic: r.Topic, ReasonCode: -1}
	if id, ok := decode.PacketID(p); ok {
		e.PacketID = int(id)
	}
	switch q := p.(type) {
	case *decode.Publish:
		e.QoS, e.Retain, e.Dup, e.PayloadSize = int(q.QoS), q.Retain, q.Dup, len(q.Payload)
		if a, ok := q.Properties.TopicAlias(); ok {
			e.TopicAlias = int(a)
		}
		if decode.ValidUTF8(q.Payload) {
			e.Payload = string(q.Payload)
		}
	case *decode.Subscribe:
		for _, s := range q.Subscriptions {
			e.Filters = append(e.Filters, s.Filter)
		}
	case *decode.Unsubscribe:
		e.Filters = q.Filters
	case *decode.Suback:
		for _, c := range q.ReasonCodes {
			e.ReasonCodes = append(e.ReasonCodes, int(c))
		}
	case *decode.Unsuback:
		for _, c := range q.ReasonCodes {
			e.ReasonCodes = append(e.ReasonCodes, int(c))
		}
	}
	rcs := reasonCodes(p)
	if len(rcs) == 1 && p.Type() != decode.SUBACK && p.Type() != decode.UNSUBACK {
		e.ReasonCode = int(rcs[0])
		e.Reason = decode.ReasonName(r.Version, p.Type(), rcs[0])
	} else if r.Version == decode.V5 {
		// The short forms of MQTT 5 PUBACK..PUBCOMP, DISCONNECT and AUTH mean reason 0x00.
		switch t := p.Type(); t {
		case decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP, decode.DISCONNECT, decode.AUTH:
			e.ReasonCode, e.Reason = 0, decode.Success.Name(t)
		}
	}
	if ps := decode.PropertiesOf(p); len(ps) > 0 {
		e.Properties = make(map[string]any, len(ps))
		for _, pr := range ps {
			switch pr.ID.Type() {
			case decode.TypeString:
				e.Properties[pr.ID.Key()] = pr.Str
			case decode.TypeBinary:
				e.Properties[pr.ID.Key()] = string(pr.Bin)
			case decode.TypeStringPair:
				if e.UserProperties == nil {
					e.UserProperties = map[string]string{}
				}
				e.UserProperties[pr.Str] = pr.Value
			default:
				e.Properties[pr.ID.Key()] = int(pr.Int)
			}
		}
	}
	if len(r.Notes) > 0 {
		e.Notes = make([]filterNote, len(r.Notes))
		for i, n := range r.Notes {
			e.Notes[i] = filterNote{Level: n.Level.String(), Rule: n.Rule, Text: n.Text}
		}
		l, _ := r.MaxLevel()
		e.Level = l.String()
	}
	return e
}

// notesPatcher rewrites notes.FIELD so that comparisons hold for any note: notes.rule == "X"
// becomes any(notes, .rule == "X"); elsewhere notes.FIELD becomes map(notes, .FIELD), the list
// of that field's values.
type notesPatcher struct {
	lists map[ast.Node]string
}

func (p *notesPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, ok2 := n.Property.(*ast.StringNode)
		if !ok || !ok2 || id.Value != "notes" {
			return
		}
		list := &ast.BuiltinNode{Name: "map", Arguments: []ast.Node{
			&ast.IdentifierNode{Value: "notes"},
			&ast.PredicateNode{Node: &ast.MemberNode{Node: &ast.PointerNode{}, Property: &ast.StringNode{Value: prop.Value}}},
		}}
		list.SetLocation(n.Location())
		if p.lists == nil {
			p.lists = map[ast.Node]string{}
		}
		p.lists[list] = prop.Value
		*node = list
	case *ast.BinaryNode:
		field, ok := p.lists[n.Left]
		if !ok {
			return
		}
		op, builtin := n.Operator, "any"
		switch op {
		case "!=":
			op, builtin = "==", "none"
		case "==", "contains", "startsWith", "endsWith", "matches", "in", "not in", "<", "<=", ">", ">=":
		default:
			return
		}
		cmp := &ast.BinaryNode{Operator: op, Left: &ast.MemberNode{Node: &ast.PointerNode{}, Property: &ast.StringNode{Value: field}}, Right: n.Right}
		b := &ast.BuiltinNode{Name: builtin, Arguments: []ast.Node{&ast.IdentifierNode{Value: "notes"}, &ast.PredicateNode{Node: cmp}}}
		b.SetLocation(n.Location())
		*node = b
	}
}
