package fault

import (
	"fmt"
	"sync"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// The topic alias faults besides alias (in faults.go): each breaks the standard's Topic Alias
// rules in one way, on an MQTT 5 PUBLISH.
func init() {
	register("alias_unmapped", "[to=EXPR]", "send a PUBLISH alias-only (topic removed) with a Topic Alias\n"+
		"the sender never mapped on this connection (default the lowest)",
		func(r *Rule, params map[string]token) (Fault, error) {
			to, err := optionalExpr(r, params, "to")
			return &AliasUnmapped{To: to}, err
		})
	register("alias_remap", "[to=EXPR]", "give a PUBLISH (topic kept) a Topic Alias the sender mapped to\n"+
		"another topic (default the lowest): the receiver must remap it,\n"+
		"while the sender still means the old topic by it",
		func(r *Rule, params map[string]token) (Fault, error) {
			to, err := optionalExpr(r, params, "to")
			return &AliasRemap{To: to}, err
		})
	register("alias_stale", "", "send a PUBLISH alias-only with the Topic Alias the same client id's\n"+
		"previous connection mapped to its topic (aliases must not outlive\n"+
		"their connection)",
		func(r *Rule, params map[string]token) (Fault, error) {
			return &AliasStale{}, r.onlyTypes(decode.PUBLISH)
		})
}

// optionalExpr restricts r to PUBLISH and compiles params[key] when given (nil when not).
func optionalExpr(r *Rule, params map[string]token, key string) (*Expr, error) {
	if err := r.onlyTypes(decode.PUBLISH); err != nil {
		return nil, err
	}
	if _, ok := params[key]; !ok {
		return nil, nil
	}
	return takeExpr(params, key, "")
}

// publish5Of is publishOf for MQTT 5 only (aliases do not exist before).
func publish5Of(f *proxy.Frame) *decode.Publish {
	if p := publishOf(f); p != nil && p.Version == decode.V5 {
		return p
	}
	return nil
}

// setAlias gives p the Topic Alias a, in place of the one it had.
func setAlias(p *decode.Publish, a int) {
	ps := p.Properties[:0]
	for _, pr := range p.Properties {
		if pr.ID != decode.PropTopicAlias {
			ps = append(ps, pr)
		}
	}
	p.Properties = append(ps, decode.IntProp(decode.PropTopicAlias, uint32(a)))
}

// aliasParam evaluates an alias parameter.
func aliasParam(e *Expr, v *Values) (int, string, error) {
	a, used, err := e.eval(v)
	if err == nil && (a < 0 || a > 0xFFFF) {
		err = fmt.Errorf("topic alias %d is not a two-byte integer", a)
	}
	return a, used, err
}

// aliased gives p alias a and encodes it as the fault's result.
func aliased(p *decode.Publish, a int, did, used string) (Result, error) {
	setAlias(p, a)
	return rewritten(p, did, used)
}

// AliasUnmapped sends a PUBLISH alias-only with an alias the sender has not mapped: To, or the
// lowest one. The receiver cannot know the topic: the standard makes it a Protocol Error (0x82).
type AliasUnmapped struct{ To *Expr }

func (u *AliasUnmapped) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publish5Of(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	a, used := 1, ""
	if u.To != nil {
		var err error
		if a, used, err = aliasParam(u.To, v); err != nil {
			return Result{}, fmt.Errorf("alias_unmapped: %w", err)
		}
	} else {
		for a < 0xFFFF {
			if _, ok := f.State.Alias(f.Dir, uint16(a)); !ok {
				break
			}
			a++
		}
	}
	if _, mapped := f.State.Alias(f.Dir, uint16(a)); mapped {
		return Result{Skip: true}, nil
	}
	topic := frameTopic(f, p)
	p.Topic = ""
	did := fmt.Sprintf("PUBLISH to %q sent alias-only with Topic Alias %d, which the sender has not mapped", topic, a)
	if used == "" {
		used = fmt.Sprintf("aliases=%d, topic_alias_maximum=%d", v.Aliases, v.TopicAliasMaximum)
	}
	return aliased(p, a, did, used)
}

// AliasRemap gives a PUBLISH, its topic kept, an alias the sender mapped to another topic: To,
// or the lowest one up to the receiver's Topic Alias Maximum. A receiver that follows the
// standard remaps the alias; the sender's next alias-only PUBLISH with it then goes to this
// topic.
type AliasRemap struct{ To *Expr }

func (m *AliasRemap) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publish5Of(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	topic := frameTopic(f, p)
	if topic == "" {
		return Result{Skip: true}, nil
	}
	lo, hi, used := 1, v.TopicAliasMaximum, ""
	if m.To != nil {
		a, u, err := aliasParam(m.To, v)
		if err != nil {
			return Result{}, fmt.Errorf("alias_remap: %w", err)
		}
		lo, hi, used = a, a, u
	}
	for a := lo; a <= hi; a++ {
		old, ok := f.State.Alias(f.Dir, uint16(a))
		if !ok || old == topic {
			continue
		}
		p.Topic = topic
		did := fmt.Sprintf("Topic Alias %d remapped from %q to %q (the sender still means %q by it)", a, old, topic, old)
		return aliased(p, a, did, used)
	}
	return Result{Skip: true}, nil // no alias mapped to another topic
}

// AliasStale sends a PUBLISH alias-only with the alias its client id's previous connection
// mapped to its topic in the same direction, where this connection has not mapped it: Topic
// Aliases live as long as their connection [MQTT-3.3.2-7], so a receiver must not take it.
// It remembers the aliases of the last two connections of each client id, for the
// staleClients client ids seen last (the oldest forgotten first), so that a proxy seeing ever
// new client ids holds a bounded memory.
type AliasStale struct {
	mu      sync.Mutex
	clients map[string]*aliasHistory
	conns   map[*stream.Conn]*aliasHistory
	order   []string // client ids, oldest first
	max     int      // staleClients when 0
}

// staleClients is how many client ids AliasStale remembers.
const staleClients = 10000

// aliasHistory is a client id's aliases on its previous and current connections.
type aliasHistory struct {
	client    string
	prev, cur *connAliases
}

type connAliases struct {
	conn   *stream.Conn
	tables [2]map[uint16]string // by direction
}

// watch remembers the aliases f maps, by f's connection and client id.
func (s *AliasStale) watch(f *proxy.Frame, client string) {
	if client == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == nil {
		s.clients, s.conns = map[string]*aliasHistory{}, map[*stream.Conn]*aliasHistory{}
	}
	h := s.clients[client]
	if h == nil {
		h = &aliasHistory{client: client}
		s.clients[client] = h
		s.order = append(s.order, client)
		s.forgetOldest()
	}
	var ca *connAliases
	switch {
	case h.cur != nil && h.cur.conn == f.Conn:
		ca = h.cur
	case h.prev != nil && h.prev.conn == f.Conn:
		ca = h.prev // the old connection, still open
	default: // a new connection of the client
		if h.prev != nil {
			delete(s.conns, h.prev.conn)
		}
		h.prev, h.cur = h.cur, &connAliases{conn: f.Conn}
		s.conns[f.Conn] = h
		ca = h.cur
	}
	if f.Type != decode.PUBLISH {
		return
	}
	p, ok := f.Packet().(*decode.Publish)
	if !ok || p.Topic == "" {
		return
	}
	if a, ok := p.Properties.TopicAlias(); ok && a > 0 {
		if ca.tables[f.Dir&1] == nil {
			ca.tables[f.Dir&1] = map[uint16]string{}
		}
		ca.tables[f.Dir&1][a] = p.Topic
	}
}

// forgetOldest forgets the client ids seen first while there are more than the bound.
func (s *AliasStale) forgetOldest() {
	max := s.max
	if max <= 0 {
		max = staleClients
	}
	for len(s.order) > max {
		h := s.clients[s.order[0]]
		delete(s.clients, s.order[0])
		for _, ca := range []*connAliases{h.prev, h.cur} {
			if ca != nil && s.conns[ca.conn] == h {
				delete(s.conns, ca.conn)
			}
		}
		s.order = s.order[1:]
	}
	if cap(s.order) > 2*max && len(s.order) < cap(s.order)/2 {
		s.order = append([]string(nil), s.order...) // let go of the array's forgotten head
	}
}

func (s *AliasStale) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publish5Of(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	topic := frameTopic(f, p)
	s.mu.Lock()
	h := s.conns[f.Conn]
	var old map[uint16]string
	client := ""
	if h != nil && h.cur != nil && h.cur.conn == f.Conn && h.prev != nil {
		old, client = h.prev.tables[f.Dir&1], h.client
	}
	best := -1
	for a, t := range old {
		if t != topic || (best >= 0 && int(a) > best) {
			continue
		}
		if _, mapped := f.State.Alias(f.Dir, a); !mapped {
			best = int(a)
		}
	}
	s.mu.Unlock()
	if best < 0 || topic == "" {
		return Result{Skip: true}, nil
	}
	p.Topic = ""
	did := fmt.Sprintf("PUBLISH to %q sent alias-only with Topic Alias %d, mapped on client %q's previous connection only", topic, best, client)
	return aliased(p, best, did, "")
}
