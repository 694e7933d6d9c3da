package fault

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	ytoken "github.com/goccy/go-yaml/token"
)

// Spec is one fault rule as YAML gives it: a string in the --fault grammar
//
//   - oversize dir=c2s size=max_packet_size+1 name=big
//
// or a mapping whose keys are the grammar's, with the action under "action":
//
//   - {action: oversize, dir: c2s, size: "max_packet_size+1", name: big}
//
// or a mapping whose rule is the action and keys in the grammar, with more keys beside:
//
//   - {rule: "drop type=PUBACK", name: lost}
//
// A list value is a comma-separated one (type: [PUBACK, PUBREC]). Unknown keys are errors
// that name the key and its line:column (PosError). Other files (mqscope test's scenarios)
// embed []Spec.
type Spec struct {
	Text string // the rule in the grammar (a mapping written as one)
	Line int    // where the rule is in its file (0 when not read from YAML)
	Col  int

	toks []token // a mapping's keys and values, the action first; nil for a string
}

var _ yaml.NodeUnmarshaler = (*Spec)(nil)

// UnmarshalYAML reads a rule from a string or mapping node and checks it (n=1 for its default
// name), so that a file with a bad rule is an error where it is read.
func (s *Spec) UnmarshalYAML(node ast.Node) error {
	sp, err := specOf(node)
	if err != nil {
		return err
	}
	if _, err := sp.Rule(1); err != nil {
		return err
	}
	*s = sp
	return nil
}

// Rule parses the spec; n numbers it in its default name ("#n action").
func (s Spec) Rule(n int) (*Rule, error) {
	if s.toks == nil {
		r, err := Parse(s.Text, n)
		if err != nil && s.Line > 0 {
			return nil, &PosError{Line: s.Line, Col: s.Col, Err: err}
		}
		return r, err
	}
	r, err := parseTokens(s.toks, s.Text, n)
	if err != nil {
		var pe *PosError
		if !errors.As(err, &pe) {
			err = &PosError{Line: s.Line, Col: s.Col, Err: err}
		}
		return nil, err
	}
	return r, nil
}

func (s Spec) String() string { return s.Text }

// pos is where node starts.
func pos(node ast.Node) (line, col int) {
	if t := node.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line, t.Position.Column
	}
	return 0, 0
}

func posErrorf(node ast.Node, format string, args ...any) error {
	line, col := pos(node)
	return &PosError{Line: line, Col: col, Err: fmt.Errorf(format, args...)}
}

// specOf reads a rule node.
func specOf(node ast.Node) (Spec, error) {
	node = unwrap(node)
	line, col := pos(node)
	sp := Spec{Line: line, Col: col}
	switch n := node.(type) {
	case *ast.StringNode:
		sp.Text = n.Value
		return sp, nil
	case *ast.MappingNode:
		return mappingSpec(n.Values)
	case *ast.MappingValueNode:
		return mappingSpec([]*ast.MappingValueNode{n})
	}
	return Spec{}, posErrorf(node, "a fault rule is a string (%q) or a mapping with an action key, not %s",
		"drop type=PUBACK", kind(node))
}

// mappingSpec reads a rule mapping into tokens, the action first, and writes it in the grammar.
func mappingSpec(kvs []*ast.MappingValueNode) (Spec, error) {
	var sp Spec
	if len(kvs) > 0 {
		sp.Line, sp.Col = pos(unwrap(kvs[0].Key)) // a mapping's place is its first key's
	}
	var act *token
	for _, kv := range kvs {
		kn := unwrap(kv.Key)
		kl, kc := pos(kn)
		key, ok := kn.(*ast.StringNode)
		if !ok {
			return Spec{}, posErrorf(kn, "a key is a name such as action or dir, not %s", kind(kn))
		}
		val, err := scalar(key.Value, kn, kv.Value)
		if err != nil {
			return Spec{}, err
		}
		t := token{key: key.Value, val: val, line: kl, col: kc, hasVal: true}
		switch {
		case t.key == "action" && act == nil:
			act = &token{key: val, line: kl, col: kc}
		case t.key == "rule" && act == nil:
			// The action and keys in the grammar: placed at the value's line, and its column
			// plus theirs (quoting may shift the columns).
			rt, err := tokenize(val)
			if err == nil && len(rt) == 0 {
				err = errors.New("empty rule: give an action such as oversize, drop or disconnect")
			}
			vn := unwrap(kv.Value)
			vl, vc := pos(vn)
			if tk := vn.GetToken(); tk != nil && (tk.Type == ytoken.DoubleQuoteType || tk.Type == ytoken.SingleQuoteType) {
				vc++ // past the quote
			}
			if err != nil {
				return Spec{}, &PosError{Line: vl, Col: vc, Err: fmt.Errorf("rule: %w", err)}
			}
			for i := range rt {
				rt[i].line, rt[i].col = vl, vc+rt[i].col-1
			}
			act = &rt[0]
			sp.toks = append(sp.toks, rt[1:]...)
		case t.key == "action" || t.key == "rule":
			return Spec{}, t.errorf("give the action once: with action or in rule, not both")
		default:
			sp.toks = append(sp.toks, t)
		}
	}
	if act == nil {
		return Spec{}, &PosError{Line: sp.Line, Col: sp.Col, Err: fmt.Errorf("no action: add action: NAME (%s), or rule: RULE", actionNames())}
	}
	sp.toks = append([]token{*act}, sp.toks...)
	words := []string{act.key}
	for _, t := range sp.toks[1:] {
		if t.hasVal {
			words = append(words, t.key+"="+quote(t.val))
		} else {
			words = append(words, t.key) // an error parseTokens reports
		}
	}
	sp.Text = strings.Join(words, " ")
	return sp, nil
}

// scalar is a mapping value as the grammar's text: a number keeps its spelling (0x89), a list
// is comma-separated.
func scalar(key string, kn, node ast.Node) (string, error) {
	node = unwrap(node)
	switch n := node.(type) {
	case *ast.StringNode:
		return n.Value, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return n.GetToken().Value, nil
	case *ast.SequenceNode:
		var vs []string
		for _, v := range n.Values {
			s, err := scalar(key, kn, v)
			if err != nil {
				return "", err
			}
			if _, isList := unwrap(v).(*ast.SequenceNode); isList {
				return "", posErrorf(v, "%s: a list inside a list", key)
			}
			vs = append(vs, s)
		}
		return strings.Join(vs, ","), nil
	case nil, *ast.NullNode:
		return "", posErrorf(kn, "%s has no value", key)
	}
	return "", posErrorf(node, "%s: want a value (a number, a string or a list), not %s", key, kind(node))
}

// unwrap returns the node an anchor or tag holds.
func unwrap(node ast.Node) ast.Node {
	for {
		switch n := node.(type) {
		case *ast.AnchorNode:
			node = n.Value
		case *ast.TagNode:
			node = n.Value
		case *ast.MappingKeyNode:
			node = n.Value
		default:
			return node
		}
	}
}

func kind(node ast.Node) string {
	switch node.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a " + strings.ToLower(node.Type().String())
}

// quote writes v as a value of the grammar: in double quotes when it has a space, a quote, a
// backslash or nothing.
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"\\") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// ParseSpec reads one rule from YAML or JSON: a string or a mapping as in a file's list.
func ParseSpec(b []byte) (Spec, error) {
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return Spec{}, yamlError(err)
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return Spec{}, &PosError{Line: 1, Col: 1, Err: errors.New("want one rule: a string or a mapping")}
	}
	sp, err := specOf(f.Docs[0].Body)
	if err != nil {
		return Spec{}, err
	}
	if _, err := sp.Rule(1); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

// LoadFile reads the fault rules of a YAML file whose top level is
//
//	faults:
//	  - oversize dir=c2s size=max_packet_size+1
//	  - {action: drop, type: PUBACK, dir: s2c, count: 1}
//
// Errors say the file, line and column.
func LoadFile(path string) ([]*Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w file: %w", ErrRule, err)
	}
	rules, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return rules, nil
}

// ParseFile parses the YAML of LoadFile; errors begin with the line and column.
func ParseFile(b []byte) ([]*Rule, error) {
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return nil, yamlError(err)
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, &PosError{Line: 1, Col: 1, Err: errors.New("want one YAML document with faults: [rules...]")}
	}
	top, ok := unwrap(f.Docs[0].Body).(*ast.MappingNode)
	if !ok {
		if kv, one := unwrap(f.Docs[0].Body).(*ast.MappingValueNode); one {
			top = &ast.MappingNode{Values: []*ast.MappingValueNode{kv}}
		} else {
			return nil, posErrorf(f.Docs[0].Body, "want faults: [rules...] at the top, not %s", kind(unwrap(f.Docs[0].Body)))
		}
	}
	var list ast.Node
	for _, kv := range top.Values {
		k := unwrap(kv.Key)
		if s, ok := k.(*ast.StringNode); !ok || s.Value != "faults" {
			return nil, posErrorf(k, "unknown key %s (the top level has faults only)", k.GetToken().Value)
		}
		list = kv.Value
	}
	if list == nil {
		return nil, &PosError{Line: 1, Col: 1, Err: errors.New("no faults: key")}
	}
	var items []ast.Node
	switch n := unwrap(list).(type) {
	case *ast.SequenceNode:
		items = n.Values
	case *ast.NullNode:
	default:
		return nil, posErrorf(list, "faults: want a list of rules, not %s", kind(n))
	}
	rules := make([]*Rule, 0, len(items))
	for i, item := range items {
		sp, err := specOf(item)
		if err != nil {
			return nil, err
		}
		r, err := sp.Rule(i + 1)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// yamlError is a YAML syntax error as "line:column: message".
func yamlError(err error) error {
	var se *yaml.SyntaxError
	if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
		return &PosError{Line: se.Token.Position.Line, Col: se.Token.Position.Column, Err: errors.New(se.Message)}
	}
	return err
}
