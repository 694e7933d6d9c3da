package fault

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// Applied is one fault applied to a frame, for the timeline.
type Applied struct {
	Time      time.Time
	Conn      int
	Dir       stream.Dir
	Rule      string
	Type      decode.Type // of the frame selected
	Did       string
	Before    int // the frame's size
	After     int // the bytes sent instead (0 when dropped)
	Used      string
	Closed    bool
	Malformed bool // on purpose: see Result
}

func (a Applied) String() string {
	s := fmt.Sprintf("conn %d %s fault %s: %s (%d → %d bytes)", a.Conn, a.Dir, a.Rule, a.Did, a.Before, a.After)
	if a.Used != "" {
		s += "; " + a.Used
	}
	return s
}

// Set is the rules applied to connections: rules for every connection, and rules each
// connection has of its own (AddConn), which come first. Rules are added and removed while
// connections run (the control API): each list is an immutable slice behind an atomic pointer,
// replaced whole by a writer, so forwarding never waits for one.
type Set struct {
	// Rules are the rules the set starts with; after the set's first use, Add and Remove change
	// the rules, and Rules is not read again.
	Rules []*Rule
	// Report hears of every fault applied, from the connection's pipeline goroutines.
	Report func(Applied)
	// Live gives every connection a stage even while the set has no rules, so that rules added
	// later apply to connections open already. Without it a connection opened while the set
	// is empty is forwarded byte for byte, unframed.
	Live bool
	// Device and Broker are the proxy's transports (stream.Memory for the embedded broker):
	// a rule added that cannot act on them (a reset towards a connection in memory) is
	// refused (see CheckTransports for the rules a set starts with).
	Device, Broker stream.Transport

	once  sync.Once
	rules atomic.Pointer[[]*entry] // for every connection

	wmu  sync.Mutex // serialises the writers of the rule lists; guards next
	next int        // rules added so far, for default names

	cmu   sync.Mutex // guards conns
	conns map[int]*connState

	rmu sync.Mutex // guards the random source, shared by every connection
}

// entry is a rule in a set, with how many times it was applied on every connection so far.
type entry struct {
	*Rule
	applied atomic.Int64
}

// connState is a connection's own rules, counters and client identifier, shared by its two
// directions.
type connState struct {
	rules atomic.Pointer[[]*entry]

	mu       sync.Mutex // guards what follows
	clientID string
	counts   map[*Rule]*counts // by rule, so counts survive rules added and removed
	stages   int               // the stages open, of this connection's two directions
	start    time.Time         // when the connection opened, on the pipeline's clock
}

// counts are a rule's counters on one connection.
type counts struct {
	matched, applied int
	since            time.Time // when the first packet of a type in the rule's Since passed
}

// count returns r's counters on the connection; the caller holds cs.mu.
func (cs *connState) count(r *Rule) *counts {
	c := cs.counts[r]
	if c == nil {
		c = &counts{}
		cs.counts[r] = c
	}
	return c
}

// load returns the rules for every connection.
func (s *Set) load() []*entry {
	s.once.Do(func() {
		es := make([]*entry, len(s.Rules))
		for i, r := range s.Rules {
			es[i] = &entry{Rule: r}
		}
		s.next = len(es)
		s.rules.Store(&es)
	})
	return *s.rules.Load()
}

// Stages is proxy.Config.Stages for the set: one stage applying the rules to a direction (none
// when the set is not Live and has no rules).
func (s *Set) Stages(c *stream.Conn, dir stream.Dir, env proxy.StageEnv) []proxy.Stage {
	if len(s.load()) == 0 && !s.Live {
		return nil
	}
	// Both directions share a state, kept while either runs.
	s.cmu.Lock()
	if s.conns == nil {
		s.conns = map[int]*connState{}
	}
	cs := s.conns[c.ID]
	if cs == nil {
		cs = &connState{counts: map[*Rule]*counts{}}
		cs.rules.Store(new([]*entry))
		if env.Now != nil {
			cs.start = env.Now()
		}
		s.conns[c.ID] = cs
	}
	cs.stages++
	s.cmu.Unlock()
	return []proxy.Stage{&stage{set: s, cs: cs, id: c.ID, conn: c, dir: dir, env: env, inst: map[*Rule]Fault{}}}
}

// stage applies the set's rules to one direction of a connection.
type stage struct {
	set  *Set
	cs   *connState
	id   int
	conn *stream.Conn
	dir  stream.Dir
	env  proxy.StageEnv
	// inst are the faults of the rules applied so far, each dirFault's instance for this
	// direction (opened on the rule's first use); order has them in the order opened.
	inst  map[*Rule]Fault
	order []Fault
	// passing are the rules whose since= packet is the frame going through: their window
	// opened as it came, and opens for the frames after it.
	passing []*Rule
}

// instance returns r's fault for this direction.
func (st *stage) instance(r *Rule) Fault {
	in, ok := st.inst[r]
	if !ok {
		in = r.Fault
		if df, isDir := r.Fault.(dirFault); isDir {
			in = df.open(st.dirEnv(r))
		}
		st.inst[r] = in
		st.order = append(st.order, in)
	}
	return in
}

// HoldEnd lets the rules that hold the direction's end (slow_close) hold it.
func (st *stage) HoldEnd() error {
	for _, rules := range st.lists() {
		for _, e := range rules {
			if !e.Dirs.has(st.dir) {
				continue
			}
			h, ok := st.instance(e.Rule).(endHolder)
			if !ok {
				continue
			}
			did, err := h.holdEnd()
			if err != nil {
				// Cut short (the connection was taken down while the end was held): the
				// record says so, and the end goes on.
				did = fmt.Sprintf("close hold cut short: %v", err)
			}
			if st.set.Report != nil {
				st.set.Report(Applied{Time: st.dirEnv(e.Rule).now(), Conn: st.id, Dir: st.dir, Rule: e.Name, Did: did})
			}
			if err != nil {
				return fmt.Errorf("fault %s: %w", e.Name, err)
			}
		}
	}
	return nil
}

// End tells the faults that hold frames the direction ended, and forgets the connection once
// both its directions have.
func (st *stage) End() {
	st.ended()
	s := st.set
	s.cmu.Lock()
	defer s.cmu.Unlock()
	st.cs.stages--
	if st.cs.stages == 0 && s.conns[st.id] == st.cs {
		delete(s.conns, st.id)
	}
}

// lists are the rule lists for f's connection, in the order they apply: its own, then those
// for every connection.
func (st *stage) lists() [2][]*entry {
	return [2][]*entry{*st.cs.rules.Load(), st.set.load()}
}

// watcher is a Fault that sees every frame of the connections, selected or not, before the
// rules apply (to remember what a client did on an earlier connection); client is the
// connection's client identifier ("" while unknown).
type watcher interface {
	watch(f *proxy.Frame, client string)
}

// now is the pipeline's clock (the frame's time when the stage was given none).
func (st *stage) now(f *proxy.Frame) time.Time {
	if st.env.Now != nil {
		return st.env.Now()
	}
	return f.Time
}

// Frame applies the first rule that selects f.
func (st *stage) Frame(f *proxy.Frame, emit func([]byte) error) error {
	cs := st.cs
	cs.mu.Lock()
	if cs.start.IsZero() {
		cs.start = st.now(f)
	}
	switch {
	case f.Type == decode.CONNECT && f.Dir == stream.C2S:
		if p, ok := f.Packet().(*decode.Connect); ok {
			cs.clientID = p.ClientID
		}
	case f.Type == decode.CONNACK && f.Dir == stream.S2C && cs.clientID == "":
		// A client that sent no identifier is known by the one the server assigned.
		if p, ok := f.Packet().(*decode.Connack); ok {
			cs.clientID, _ = p.Properties.String(decode.PropAssignedClientID)
		}
	}
	client := cs.clientID
	cs.mu.Unlock()
	lists := st.lists()
	for _, rules := range lists {
		for _, e := range rules {
			st.instance(e.Rule) // from the rule's first frame on, whether it selects it or not
			if w, ok := e.Fault.(watcher); ok {
				w.watch(f, client)
			}
		}
	}
	st.passes(lists, f)
	return st.frame(lists, f, emit)
}

// passes notes the time f comes, for the rules that start after the first packet of its type:
// before f goes on, so that what its receiver does next finds the window open (f itself is
// not in it: see passing).
func (st *stage) passes(lists [2][]*entry, f *proxy.Frame) {
	st.passing = st.passing[:0]
	var now time.Time
	for _, rules := range lists {
		for _, e := range rules {
			if len(e.Sel.Since) == 0 || !typeIn(f.Type, e.Sel.Since) {
				continue
			}
			if now.IsZero() {
				now = st.now(f)
			}
			st.cs.mu.Lock()
			if c := st.cs.count(e.Rule); c.since.IsZero() {
				c.since = now
				st.passing = append(st.passing, e.Rule)
			}
			st.cs.mu.Unlock()
		}
	}
}

// frame applies the first rule that selects f: the connection's own rules first.
func (st *stage) frame(lists [2][]*entry, f *proxy.Frame, emit func([]byte) error) error {
	for _, rules := range lists {
		for _, e := range rules {
			if !e.Dirs.has(f.Dir) || !st.selects(e.Rule, f) {
				continue
			}
			sent, done, err := st.apply(e, f, emit)
			if err != nil {
				return err
			}
			if done {
				return st.follow(f, sent, emit)
			}
		}
	}
	if err := emit(f.Bytes); err != nil {
		return err
	}
	return st.follow(f, 1, emit)
}

// apply applies e's fault to f, returning how many frames it sent; false when the fault does
// not apply to f after all (Skip).
func (st *stage) apply(e *entry, f *proxy.Frame, emit func([]byte) error) (int, bool, error) {
	r := e.Rule
	v := valuesOf(f)
	res, err := st.instance(r).Apply(f, &v)
	if err != nil {
		return 0, true, fmt.Errorf("fault %s: %w", r.Name, err)
	}
	if res.Skip {
		return 0, false, nil
	}
	st.cs.mu.Lock()
	st.cs.count(r).applied++
	st.cs.mu.Unlock()
	e.applied.Add(1)
	a := Applied{Time: f.Time, Conn: f.Conn.ID, Dir: f.Dir, Rule: r.Name, Type: f.Type, Did: res.Did,
		Before: len(f.Bytes), Used: res.Used, Closed: res.Close || res.Reset, Malformed: res.Malformed}
	out := res.Out // the frames sent
	if res.Pieces && len(out) > 0 {
		out = [][]byte{bytes.Join(out, nil)}
	}
	sent := len(out)
	// The observers hear of it before the bytes go: the peer's reaction comes after its cause.
	alt := &stream.Alteration{Rule: r.Name, Did: res.Did, Used: res.Used, Before: bytes.Clone(f.Bytes),
		Own: res.Own, Closed: res.Close || res.Reset, Malformed: res.Malformed}
	if r.After {
		sent++
		alt.After, alt.Kept = append(alt.After, alt.Before), 1
	}
	alt.After = append(alt.After, out...)
	for _, b := range alt.After {
		a.After += len(b)
	}
	f.Alter(alt)
	if st.set.Report != nil {
		st.set.Report(a)
	}
	if r.After {
		if err := emit(f.Bytes); err != nil {
			return 0, true, err
		}
	}
	for k, b := range res.Out {
		if k < len(res.At) {
			if err := st.dirEnv(r).waitUntil(res.At[k]); err != nil {
				return 0, true, fmt.Errorf("fault %s: %w", r.Name, err)
			}
		}
		if err := emit(b); err != nil {
			return 0, true, err
		}
	}
	switch {
	case res.Close:
		return 0, true, fmt.Errorf("%w: fault %s: %s", proxy.ErrStageClose, r.Name, res.Did)
	case res.Reset:
		return 0, true, fmt.Errorf("%w: fault %s: %s", proxy.ErrStageReset, r.Name, res.Did)
	case res.Shut:
		return 0, true, fmt.Errorf("%w: fault %s: %s", proxy.ErrStageShut, r.Name, res.Did)
	}
	return sent, true, nil
}

// selects reports whether rule r selects f, counting it when it passes the conditions on the
// frame itself.
func (st *stage) selects(r *Rule, f *proxy.Frame) bool {
	sel := &r.Sel
	if len(sel.Types) > 0 && !typeIn(f.Type, sel.Types) {
		return false
	}
	if sel.Topic != "" || sel.QoS >= 0 || sel.Retain != nil {
		p, ok := f.Packet().(*decode.Publish)
		if !ok {
			return false
		}
		if sel.QoS >= 0 && int(p.QoS) != sel.QoS {
			return false
		}
		if sel.Retain != nil && p.Retain != *sel.Retain {
			return false
		}
		if sel.Topic != "" && !matchTopic(sel.Topic, frameTopic(f, p)) {
			return false
		}
	}
	if sel.Reason != nil && !slices.Contains(reasonsOf(f.Packet()), *sel.Reason) {
		return false
	}
	var now time.Time
	if sel.timed() {
		now = st.now(f)
	}
	cs := st.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := cs.count(r)
	if sel.Client != "" {
		if ok, _ := path.Match(sel.Client, cs.clientID); !ok {
			return false
		}
	}
	if sel.timed() {
		from := cs.start
		if len(sel.Since) > 0 {
			if from = n.since; from.IsZero() || slices.Contains(st.passing, r) {
				return false // the packet has not passed yet
			}
		}
		from = from.Add(sel.Start)
		if now.Before(from) || (sel.For > 0 && !now.Before(from.Add(sel.For))) {
			return false
		}
	}
	if sel.Count > 0 && n.applied >= sel.Count {
		return false
	}
	n.matched++
	m := n.matched
	if (sel.Nth > 0 && m != sel.Nth) || (sel.Every > 0 && m%sel.Every != 0) {
		return false
	}
	if sel.Prob > 0 && sel.Prob < 1 {
		st.set.rmu.Lock()
		x := st.env.Rand.Float64()
		st.set.rmu.Unlock()
		if x >= sel.Prob {
			return false
		}
	}
	return true
}

// reasonsOf returns the reason codes p carries (an MQTT 5 acknowledgement without one carries
// 0x00 Success), none for a packet without.
func reasonsOf(p decode.Packet) []decode.ReasonCode {
	switch p := p.(type) {
	case *decode.Connack:
		return []decode.ReasonCode{p.ReasonCode}
	case *decode.Ack:
		if p.Version == decode.V5 {
			return []decode.ReasonCode{p.ReasonCode}
		}
	case *decode.Suback:
		return p.ReasonCodes
	case *decode.Unsuback:
		return p.ReasonCodes
	case *decode.Disconnect:
		if p.Version == decode.V5 {
			return []decode.ReasonCode{p.ReasonCode}
		}
	case *decode.Auth:
		return []decode.ReasonCode{p.ReasonCode}
	}
	return nil
}

func typeIn(t decode.Type, ts []decode.Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// Number names the rules without a name= by their place in the list ("#3 drop", counting from
// 1), and checks that no two have the same name.
func Number(rules []*Rule) error {
	seen := make(map[string]int, len(rules))
	for i, r := range rules {
		if !r.named {
			r.Name = fmt.Sprintf("#%d %s", i+1, r.action)
		}
		if j, dup := seen[r.Name]; dup {
			return fmt.Errorf("%w: rules %d and %d are both named %s", ErrRule, j+1, i+1, r.Name)
		}
		seen[r.Name] = i
	}
	return nil
}

// ParseAll parses rules given one per string.
func ParseAll(rules []string) ([]*Rule, error) {
	rs := make([]*Rule, len(rules))
	for i, s := range rules {
		r, err := Parse(s, i+1)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	return rs, nil
}
