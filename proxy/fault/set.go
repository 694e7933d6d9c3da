package fault

import (
	"fmt"
	"path"
	"slices"
	"sync"
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

// Set is a list of rules applied to every connection.
type Set struct {
	Rules []*Rule
	// Report hears of every fault applied, from the connection's pipeline goroutines.
	Report func(Applied)

	mu    sync.Mutex // guards pending and the random sources
	conns map[*stream.Conn]*connState
}

// connState is a connection's counters and client identifier, shared by its two directions.
type connState struct {
	mu       sync.Mutex
	clientID string
	matched  []int // per rule
	applied  []int
	opened   int         // directions that took their stages
	start    time.Time   // when the connection opened, on the pipeline's clock
	since    []time.Time // per rule: when the first packet of a type in its Since passed
}

// Stages is proxy.Config.Stages for the set (nil stages when no rule is in dir).
func (s *Set) Stages(c *stream.Conn, dir stream.Dir, env proxy.StageEnv) []proxy.Stage {
	if len(s.Rules) == 0 {
		return nil
	}
	// Both directions share a state; it is forgotten here once both took it.
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*stream.Conn]*connState{}
	}
	cs := s.conns[c]
	if cs == nil {
		cs = &connState{matched: make([]int, len(s.Rules)), applied: make([]int, len(s.Rules)), since: make([]time.Time, len(s.Rules))}
		if env.Now != nil {
			cs.start = env.Now()
		}
		s.conns[c] = cs
	}
	if cs.opened++; cs.opened == 2 {
		delete(s.conns, c)
	}
	s.mu.Unlock()
	return []proxy.Stage{&stage{set: s, cs: cs, env: env}}
}

// stage applies the set's rules to one direction of a connection.
type stage struct {
	set *Set
	cs  *connState
	env proxy.StageEnv
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
	for _, r := range st.set.Rules {
		if w, ok := r.Fault.(watcher); ok {
			w.watch(f, client)
		}
	}
	err := st.frame(f, emit)
	st.passed(f)
	return err
}

// passed notes that f went through, for the rules that start after a packet of its type.
func (st *stage) passed(f *proxy.Frame) {
	var now time.Time
	for i, r := range st.set.Rules {
		if len(r.Sel.Since) == 0 || !typeIn(f.Type, r.Sel.Since) {
			continue
		}
		if now.IsZero() {
			now = st.now(f)
		}
		st.cs.mu.Lock()
		if st.cs.since[i].IsZero() {
			st.cs.since[i] = now
		}
		st.cs.mu.Unlock()
	}
}

func (st *stage) frame(f *proxy.Frame, emit func([]byte) error) error {
	for i, r := range st.set.Rules {
		if !r.Dirs.has(f.Dir) || !st.selects(i, r, f) {
			continue
		}
		v := valuesOf(f)
		res, err := r.Fault.Apply(f, &v)
		if err != nil {
			return fmt.Errorf("fault %s: %w", r.Name, err)
		}
		if res.Skip {
			continue
		}
		st.cs.mu.Lock()
		st.cs.applied[i]++
		st.cs.mu.Unlock()
		a := Applied{Time: f.Time, Conn: f.Conn.ID, Dir: f.Dir, Rule: r.Name, Type: f.Type, Did: res.Did,
			Before: len(f.Bytes), Used: res.Used, Closed: res.Close, Malformed: res.Malformed}
		if r.After {
			a.After = len(f.Bytes)
			if err := emit(f.Bytes); err != nil {
				return err
			}
		}
		for _, b := range res.Out {
			a.After += len(b)
		}
		if st.set.Report != nil {
			st.set.Report(a) // before the bytes go: the peer's reaction comes after its cause
		}
		for _, b := range res.Out {
			if err := emit(b); err != nil {
				return err
			}
		}
		if res.Close {
			return fmt.Errorf("%w: fault %s: %s", proxy.ErrStageClose, r.Name, res.Did)
		}
		return nil
	}
	return emit(f.Bytes)
}

// selects reports whether rule i selects f, counting it when it passes the conditions on the
// frame itself.
func (st *stage) selects(i int, r *Rule, f *proxy.Frame) bool {
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
	if sel.Client != "" {
		if ok, _ := path.Match(sel.Client, cs.clientID); !ok {
			return false
		}
	}
	if sel.timed() {
		from := cs.start
		if len(sel.Since) > 0 {
			if from = cs.since[i]; from.IsZero() {
				return false // the packet has not passed yet
			}
		}
		from = from.Add(sel.Start)
		if now.Before(from) || (sel.For > 0 && !now.Before(from.Add(sel.For))) {
			return false
		}
	}
	if sel.Count > 0 && cs.applied[i] >= sel.Count {
		return false
	}
	cs.matched[i]++
	m := cs.matched[i]
	if (sel.Nth > 0 && m != sel.Nth) || (sel.Every > 0 && m%sel.Every != 0) {
		return false
	}
	if sel.Prob > 0 && sel.Prob < 1 {
		st.set.mu.Lock() // the random source is shared by every connection
		x := st.env.Rand.Float64()
		st.set.mu.Unlock()
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
