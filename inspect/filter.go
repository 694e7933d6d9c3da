package inspect

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/mqscope/mqscope/decode"
)

// Filter selects packet records with an expression over their fields, in the language of
// github.com/expr-lang/expr. The fields are those of the JSON lines (see FilterFields):
//
//	type == "PUBLISH" && topic startsWith "sensors/" && qos > 0
//	notes.rule == "MQTT-3.3.2-8"      // any note has that rule
//	conn == 3 && dir == "s2c" && reason_code >= 0x80
//
// A field the packet does not have (qos of a CONNECT, an absent property) is nil, not zero:
// == with a value is false and != true. A nil compared with <, <=, > or >= is false rather than
// an error, so that A || B matches what B || A matches and not X what X does not; retain and dup
// are false as conditions when absent. A time compared with a string compares with the instant
// the string names (see parseFilterTime).
//
// notes.rule, notes.level and notes.text stand for the field of every note, and
// user_properties.NAME for every value of that User Property: a comparison (==, contains,
// startsWith, endsWith, matches, in, <, >, ...) is true when it holds for any of them, and != is
// true when none equals the value. reason_codes.code does the same for the codes of a SUBACK or
// UNSUBACK.
//
// Match may be called from several goroutines at once.
type Filter struct {
	src  string
	prog *vm.Program

	pool sync.Pool // of *matcher

	failed atomic.Int64
	mu     sync.Mutex // guards first and firstAt
	first  error
	// firstAt places the first failure in capture order (time, then connection and packet),
	// whichever goroutine saw it first.
	firstAt struct {
		t           time.Time
		conn, index int
	}
}

// FilterFields lists the names a filter expression can use, with their types. A type with a
// leading "?" is nil when the packet does not have the field.
var FilterFields = []struct{ Name, Type, Doc string }{
	{"kind", "string", `"packet"`},
	{"time", "time", `when the packet was seen; compares with RFC 3339 strings and their prefixes, e.g. time >= "2026-11-26T14:10"`},
	{"conn", "int", "connection id"},
	{"index", "int", "packet number within the connection, from 1"},
	{"client", "string", `client address "ip:port"`},
	{"server", "string", `server address "ip:port"`},
	{"client_id", "string", "the connection's client identifier"},
	{"dir", "string", `"c2s" or "s2c"`},
	{"version", "int", "3, 4 or 5"},
	{"type", "string", `the standard's name of the packet type, e.g. "PUBLISH"`},
	{"size", "int", "bytes on the wire, fixed header included"},
	{"packet_id", "?int", "nil when the packet has none (CONNECT, QoS 0 PUBLISH, ...)"},
	{"qos", "?int", "PUBLISH QoS; nil for other packets"},
	{"retain", "?bool", "PUBLISH RETAIN; nil for other packets"},
	{"dup", "?bool", "PUBLISH DUP; nil for other packets"},
	{"topic", "?string", "PUBLISH topic, resolved through aliases; nil for other packets"},
	{"topic_alias", "?int", "PUBLISH Topic Alias; nil when none"},
	{"payload_size", "?int", "PUBLISH payload bytes; nil for other packets"},
	{"payload", "?string", "PUBLISH payload when it is UTF-8; nil otherwise"},
	{"reason_code", "int", "nil when the packet has none (SUBACK and UNSUBACK: see reason_codes)"},
	{"reason", "string", "the reason code's name, nil when none"},
	{"reason_codes", "[]int", "SUBACK and UNSUBACK reason codes, e.g. 0x87 in reason_codes; reason_codes.code == 0x87 holds when any code is 0x87"},
	{"filters", "[]string", "SUBSCRIBE and UNSUBSCRIBE topic filters"},
	{"properties", "map", `properties by snake_case name as in the JSON lines, e.g. properties.content_type; subscription_identifier is a list, user_property a list of [name, value]`},
	{"user_properties", "map[string][]string", `User Properties by name: user_properties.unit == "C" holds when any value of "unit" is "C"`},
	{"notes", "[]note", "findings: notes.level, notes.rule, notes.text"},
	{"level", "string", `the most severe note's level, "" when none`},
}

// filterEnv is what a filter expression sees. The pointer fields are nil when the packet does
// not have the field; they point into the unexported fields below, so that no more is allocated.
type filterEnv struct {
	Kind           string              `expr:"kind"`
	Time           time.Time           `expr:"time"`
	Conn           int                 `expr:"conn"`
	Index          int                 `expr:"index"`
	Client         string              `expr:"client"`
	Server         string              `expr:"server"`
	ClientID       string              `expr:"client_id"`
	Dir            string              `expr:"dir"`
	Version        int                 `expr:"version"`
	Type           string              `expr:"type"`
	Size           int                 `expr:"size"`
	PacketID       *int                `expr:"packet_id"`
	QoS            *int                `expr:"qos"`
	Retain         *bool               `expr:"retain"`
	Dup            *bool               `expr:"dup"`
	Topic          *string             `expr:"topic"`
	TopicAlias     *int                `expr:"topic_alias"`
	PayloadSize    *int                `expr:"payload_size"`
	Payload        *string             `expr:"payload"`
	ReasonCode     *int                `expr:"reason_code"`
	Reason         *string             `expr:"reason"`
	ReasonCodes    []int               `expr:"reason_codes"`
	Filters        []string            `expr:"filters"`
	Properties     map[string]any      `expr:"properties"`
	UserProperties map[string][]string `expr:"user_properties"`
	Notes          []filterNote        `expr:"notes"`
	Level          string              `expr:"level"`

	packetID, qos, topicAlias, payloadSize, reasonCode int
	retain, dup                                        bool
	topic, payload, reason                             string
}

// matcher is what one evaluation of a filter needs.
type matcher struct {
	vm  vm.VM
	env filterEnv
}

type filterNote struct {
	Level string `expr:"level"`
	Rule  string `expr:"rule"`
	Text  string `expr:"text"`
}

// ErrFilter is the category of filter errors: those of CompileFilter and those Filter.Errors
// reports.
var ErrFilter = errors.New("filter")

// The functions the patches call. Their names cannot be written in an expression.
const fnTruth = "$truth"

var compareFns = map[string]string{"<": "$lt", ">": "$gt", "<=": "$le", ">=": "$ge"}

// CompileFilter compiles a filter expression. Errors show where in the expression the problem is.
func CompileFilter(src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return &Filter{src: src}, nil
	}
	vp := &valuePatcher{}
	opts := []expr.Option{expr.Env(filterEnv{}), expr.AsBool(),
		expr.Patch(&listPatcher{}), expr.Patch(vp),
		expr.Function(fnTruth, func(a ...any) (any, error) { return truth(a[0]) }, new(func(any) bool)),
	}
	for op, name := range compareFns {
		opts = append(opts, expr.Function(name, func(a ...any) (any, error) { return compare(op, a[0], a[1]) }, new(func(any, any) bool)))
	}
	prog, err := expr.Compile(src, opts...)
	if err == nil && vp.err != nil {
		err = vp.err.Bind(file.NewSource(src))
	}
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

// Match reports whether the record matches. An empty filter matches everything. An error while
// evaluating (an operation on values of the wrong type, such as properties.content_type > 1, or
// arithmetic on a missing value) counts as no match, and is counted: see Errors.
func (f *Filter) Match(r *PacketRecord) bool {
	if f == nil || f.prog == nil {
		return true
	}
	// A VM and an environment per goroutine at a time, reused: expr's VM keeps its stack.
	m, _ := f.pool.Get().(*matcher)
	if m == nil {
		m = new(matcher)
	}
	m.env.fill(r)
	out, err := m.vm.Run(f.prog, &m.env)
	f.pool.Put(m)
	if err != nil {
		f.fail(r, err)
		return false
	}
	switch b := out.(type) {
	case bool:
		return b
	case nil: // a missing value as the whole condition, e.g. properties.content_type
		return false
	default:
		f.fail(r, fmt.Errorf("the result is %v (%T), not true or false", out, out))
		return false
	}
}

// Errors reports on how many packets the filter failed at run time (each counted as no match)
// and the first failure in capture order (whichever worker met it), which names the packet and wraps ErrFilter and expr's error, e.g.
// "filter: connection 3 packet 17 (PUBLISH): invalid operation: int > string (1:36)" followed by
// the expression with a caret. A filter that never failed returns 0, nil. Callers report a
// failure once, at the end: "the filter failed on N packets: first". Safe for concurrent use
// with Match.
func (f *Filter) Errors() (n int, first error) {
	if f == nil {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return int(f.failed.Load()), f.first
}

func (f *Filter) fail(r *PacketRecord, err error) {
	f.failed.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	at := &f.firstAt
	if f.first != nil && (r.Time.After(at.t) || r.Time.Equal(at.t) && (r.Conn > at.conn || r.Conn == at.conn && r.Index > at.index)) {
		return
	}
	f.first = fmt.Errorf("%w: connection %d packet %d (%s): %w", ErrFilter, r.Conn, r.Index, r.Packet.Type(), err)
	at.t, at.conn, at.index = r.Time, r.Conn, r.Index
}

// fill sets e to the fields of r.
func (e *filterEnv) fill(r *PacketRecord) {
	p := r.Packet
	*e = filterEnv{Kind: "packet", Time: r.Time, Conn: r.Conn, Index: r.Index, Client: r.Client, Server: r.Server,
		ClientID: r.ClientID, Dir: r.Dir.String(), Version: int(r.Version), Type: p.Type().String(), Size: r.Size()}
	if id, ok := decode.PacketID(p); ok {
		e.packetID, e.PacketID = int(id), &e.packetID
	}
	switch q := p.(type) {
	case *decode.Publish:
		e.qos, e.retain, e.dup, e.payloadSize, e.topic = int(q.QoS), q.Retain, q.Dup, len(q.Payload), r.Topic
		e.QoS, e.Retain, e.Dup, e.PayloadSize, e.Topic = &e.qos, &e.retain, &e.dup, &e.payloadSize, &e.topic
		if a, ok := q.Properties.TopicAlias(); ok {
			e.topicAlias, e.TopicAlias = int(a), &e.topicAlias
		}
		if decode.ValidUTF8(q.Payload) {
			e.payload, e.Payload = string(q.Payload), &e.payload
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
		e.reasonCode, e.reason = int(rcs[0]), decode.ReasonName(r.Version, p.Type(), rcs[0])
		e.ReasonCode, e.Reason = &e.reasonCode, &e.reason
	} else if r.Version == decode.V5 {
		// The short forms of MQTT 5 PUBACK..PUBCOMP, DISCONNECT and AUTH mean reason 0x00.
		switch t := p.Type(); t {
		case decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP, decode.DISCONNECT, decode.AUTH:
			e.reasonCode, e.reason = 0, decode.Success.Name(t)
			e.ReasonCode, e.Reason = &e.reasonCode, &e.reason
		}
	}
	if ps := decode.PropertiesOf(p); len(ps) > 0 {
		e.Properties = make(map[string]any, len(ps))
		var subIDs []int
		var users []any
		for _, pr := range ps {
			switch pr.ID.Type() {
			case decode.TypeString:
				e.Properties[pr.ID.Key()] = pr.Str
			case decode.TypeBinary:
				e.Properties[pr.ID.Key()] = string(pr.Bin)
			case decode.TypeStringPair:
				if e.UserProperties == nil {
					e.UserProperties = map[string][]string{}
				}
				e.UserProperties[pr.Str] = append(e.UserProperties[pr.Str], pr.Value)
				users = append(users, []any{pr.Str, pr.Value}) // as the JSON lines show it
			default:
				if pr.ID == decode.PropSubscriptionID {
					subIDs = append(subIDs, int(pr.Int)) // a list, as in the JSON lines
					continue
				}
				e.Properties[pr.ID.Key()] = int(pr.Int)
			}
		}
		if subIDs != nil {
			e.Properties[decode.PropSubscriptionID.Key()] = subIDs
		}
		if users != nil {
			e.Properties[decode.PropUserProperty.Key()] = users
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
}

// listOf is a list whose elements a comparison stands for: the comparison with the list's node
// on the left becomes any(coll, elem op right), or none(coll, elem == right) for !=.
type listOf struct {
	coll ast.Node
	elem func() ast.Node // the element in the predicate
}

// listPatcher rewrites notes.FIELD, user_properties.NAME and reason_codes.code so that
// comparisons hold for any element: notes.rule == "X" becomes any(notes, .rule == "X"),
// user_properties.k != "v" becomes none(user_properties.k, # == "v"). Elsewhere notes.FIELD
// becomes map(notes, .FIELD), the list of that field's values, user_properties.NAME is the list
// of that name's values and reason_codes.code is reason_codes.
type listPatcher struct {
	lists map[ast.Node]listOf
}

func (p *listPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, ok2 := n.Property.(*ast.StringNode)
		if !ok || !ok2 {
			return
		}
		var l listOf
		switch {
		case id.Value == "notes":
			field := prop.Value
			l = listOf{coll: &ast.IdentifierNode{Value: "notes"}, elem: func() ast.Node {
				return &ast.MemberNode{Node: &ast.PointerNode{}, Property: &ast.StringNode{Value: field}}
			}}
			list := &ast.BuiltinNode{Name: "map", Arguments: []ast.Node{
				&ast.IdentifierNode{Value: "notes"}, &ast.PredicateNode{Node: l.elem()},
			}}
			list.SetLocation(n.Location())
			*node = list
		case id.Value == "user_properties":
			l = listOf{coll: n, elem: func() ast.Node { return &ast.PointerNode{} }}
		case id.Value == "reason_codes" && prop.Value == "code":
			codes := &ast.IdentifierNode{Value: "reason_codes"}
			codes.SetLocation(n.Location())
			l = listOf{coll: codes, elem: func() ast.Node { return &ast.PointerNode{} }}
			*node = codes
		default:
			return
		}
		if p.lists == nil {
			p.lists = map[ast.Node]listOf{}
		}
		p.lists[*node] = l
	case *ast.BinaryNode:
		l, ok := p.lists[n.Left]
		if r, rok := p.lists[n.Right]; !ok && rok && (n.Operator == "==" || n.Operator == "!=") {
			n.Left, n.Right, l, ok = n.Right, n.Left, r, true // "v" == user_properties.k
		}
		if !ok {
			return
		}
		if _, isNil := n.Right.(*ast.NilNode); isNil {
			return // user_properties.k == nil: compare the list
		}
		op, builtin := n.Operator, "any"
		switch op {
		case "!=":
			op, builtin = "==", "none"
		case "==", "contains", "startsWith", "endsWith", "matches", "in", "<", "<=", ">", ">=":
		default:
			return
		}
		cmp := &ast.BinaryNode{Operator: op, Left: l.elem(), Right: n.Right}
		cmp.SetLocation(n.Location())
		b := &ast.BuiltinNode{Name: builtin, Arguments: []ast.Node{l.coll, &ast.PredicateNode{Node: cmp}}}
		b.SetLocation(n.Location())
		*node = b
	}
}

// valuePatcher runs after listPatcher, on the checked tree. It rewrites a <, <=, > or >= that
// may meet nil (a pointer field or a value of unknown type on either side), or compares a time
// with a string, into a call of compare, and wraps retain and dup where they are used as
// conditions so that nil counts as false. It leaves comparisons of mismatched static types to
// the checker, which reports them.
type valuePatcher struct {
	truths map[ast.Node]ast.Node // $truth(x) -> x
	err    *file.Error           // a time string that is not one
}

// Reset and ShouldRepeat make valuePatcher one that expr runs after the others, and after the
// last of its intermediate checks, so that the final check sees the calls it makes: expr 1.17
// does not check the arguments of a call again once the call has a type.
func (p *valuePatcher) Reset()             {}
func (p *valuePatcher) ShouldRepeat() bool { return false }

func (p *valuePatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		n.SetNature(nature.Nature{}) // check again, e.g. date(tpye)
	case *ast.IdentifierNode, *ast.MemberNode:
		if t := n.Type(); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool {
			c := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fnTruth}, Arguments: []ast.Node{n}}
			c.SetLocation(n.Location())
			if p.truths == nil {
				p.truths = map[ast.Node]ast.Node{}
			}
			p.truths[c] = n
			*node = c
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "||", "and", "or":
			return
		}
		// An operand of a comparison is the value itself: retain == false is false for CONNECT.
		if x, ok := p.truths[n.Left]; ok {
			n.Left = x
		}
		if x, ok := p.truths[n.Right]; ok {
			n.Right = x
		}
		fn, ok := compareFns[n.Operator]
		if !ok {
			return
		}
		lc, rc := classOf(n.Left), classOf(n.Right)
		timeStr := lc == classTime && rc == classString || lc == classString && rc == classTime
		if !timeStr {
			if !mayBeNil(n.Left) && !mayBeNil(n.Right) {
				return
			}
			if lc != classUnknown && rc != classUnknown && lc != rc {
				return // the checker says why
			}
		}
		if timeStr && p.err == nil {
			for _, side := range []ast.Node{n.Left, n.Right} {
				if s, ok := side.(*ast.StringNode); ok {
					if _, err := parseFilterTime(s.Value, time.UTC); err != nil {
						p.err = &file.Error{Location: s.Location(), Message: err.Error()}
					}
				}
			}
		}
		c := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: []ast.Node{n.Left, n.Right}}
		c.SetLocation(n.Location())
		*node = c
	}
}

type valueClass int

const (
	classUnknown valueClass = iota // any, nil
	classNumber
	classString
	classTime
	classDuration
	classOther
)

func classOf(n ast.Node) valueClass {
	t := n.Type() // interface{} when unknown
	if n.Nature().Nil {
		return classUnknown
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[time.Time]():
		return classTime
	case reflect.TypeFor[time.Duration]():
		return classDuration
	}
	switch t.Kind() {
	case reflect.Interface:
		return classUnknown
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return classNumber
	case reflect.String:
		return classString
	}
	return classOther
}

func mayBeNil(n ast.Node) bool {
	k := n.Type().Kind()
	return n.Nature().Nil || k == reflect.Pointer || k == reflect.Interface
}

// truth is retain or dup as a condition: nil is false.
func truth(v any) (any, error) {
	switch b := v.(type) {
	case nil:
		return false, nil
	case bool:
		return b, nil
	case *bool:
		return b != nil && *b, nil
	}
	return nil, fmt.Errorf("%T is not a condition", v)
}

// compare evaluates a op b (op is <, <=, > or >=) as expr does, except that it is false when
// either is nil, and that a time and a string compare as the time and the instant the string
// names, in the time's location when the string has no offset.
func compare(op string, a, b any) (any, error) {
	a, b = derefValue(a), derefValue(b)
	if a == nil || b == nil {
		return false, nil
	}
	switch x := a.(type) {
	case time.Time:
		if s, ok := b.(string); ok {
			t, err := parseFilterTime(s, x.Location())
			if err != nil {
				return nil, err
			}
			b = t
		}
	case string:
		if y, ok := b.(time.Time); ok {
			t, err := parseFilterTime(x, y.Location())
			if err != nil {
				return nil, err
			}
			a = t
		}
	}
	// These panic on mismatched types, such as string and int; the VM turns that into an error.
	switch op {
	case "<":
		return runtime.Less(a, b), nil
	case ">":
		return runtime.More(a, b), nil
	case "<=":
		return runtime.LessOrEqual(a, b), nil
	default:
		return runtime.MoreOrEqual(a, b), nil
	}
}

// derefValue returns what the pointer fields of filterEnv point to, nil for a nil pointer.
func derefValue(v any) any {
	switch p := v.(type) {
	case *int:
		if p == nil {
			return nil
		}
		return *p
	case *string:
		if p == nil {
			return nil
		}
		return *p
	case *bool:
		if p == nil {
			return nil
		}
		return *p
	}
	return v
}

// parseFilterTime parses an RFC 3339 time or a prefix of one down to the year: "2026",
// "2026-11", "2026-11-26", "2026-11-26T14", "2026-11-26T14:10", "2026-11-26T14:10:03.5". A time
// of day may be followed by "Z" or an offset such as "+01:00"; a space may stand for the T. A
// prefix names the instant its period begins; without an offset, in loc.
func parseFilterTime(s string, loc *time.Location) (time.Time, error) {
	v := strings.ToUpper(s)
	if len(v) > 10 && v[10] == ' ' {
		v = v[:10] + "T" + v[11:]
	}
	zone := ""
	if i := strings.LastIndexAny(v, "Z+-"); i > 10 {
		v, zone = v[:i], v[i:]
	}
	var layout string
	switch n := len(v); {
	case n == 4:
		layout = "2006"
	case n == 7:
		layout = "2006-01"
	case n == 10:
		layout = "2006-01-02"
	case n == 13:
		layout = "2006-01-02T15"
	case n == 16:
		layout = "2006-01-02T15:04"
	case n >= 19:
		layout = "2006-01-02T15:04:05" // Parse accepts a fraction of seconds after 05
	}
	var t time.Time
	err := errors.New("bad length")
	switch {
	case layout == "":
	case zone == "":
		t, err = time.ParseInLocation(layout, v, loc)
	default:
		t, err = time.Parse(layout+"Z07:00", v+zone)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor a prefix of it such as 2026-11-26T14:10", s)
	}
	return t, nil
}
