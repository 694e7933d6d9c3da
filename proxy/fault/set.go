package fault

import (
	"fmt"
	"path"
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
	opened   int // directions that took their stages
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
		cs = &connState{matched: make([]int, len(s.Rules)), applied: make([]int, len(s.Rules))}
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

// Frame applies the first rule that selects f.
func (st *stage) Frame(f *proxy.Frame, emit func([]byte) error) error {
	if f.Type == decode.CONNECT && f.Dir == stream.C2S {
		if c, ok := f.Packet().(*decode.Connect); ok {
			st.cs.mu.Lock()
			st.cs.clientID = c.ClientID
			st.cs.mu.Unlock()
		}
	}
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
	if sel.Topic != "" || sel.QoS >= 0 {
		p, ok := f.Packet().(*decode.Publish)
		if !ok {
			return false
		}
		if sel.QoS >= 0 && int(p.QoS) != sel.QoS {
			return false
		}
		if sel.Topic != "" && !matchTopic(sel.Topic, frameTopic(f, p)) {
			return false
		}
	}
	cs := st.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if sel.Client != "" {
		if ok, _ := path.Match(sel.Client, cs.clientID); !ok {
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
