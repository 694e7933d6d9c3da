package fault

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
)

// Errors of the rule lists' changes.
var (
	ErrExists = errors.New("a rule has that name")
	ErrNoRule = errors.New("no rule has that name")
	ErrNoConn = errors.New("no open connection with fault stages")
)

// RuleStatus is a rule of a set as the control API shows it.
type RuleStatus struct {
	Name string `json:"name"`
	Text string `json:"text"`
	Dirs string `json:"dirs"`
	// Scope is "all" for a rule of every connection, "connection" for a connection's own.
	Scope string `json:"scope"`
	// Applied counts the times the rule was applied: on every connection (closed ones
	// included) in Set.List, on the connection in Set.ConnRules.
	Applied int64 `json:"applied"`
}

func status(e *entry, scope string, applied int64) RuleStatus {
	return RuleStatus{Name: e.Name, Text: e.Text, Dirs: e.Dirs.String(), Scope: scope, Applied: applied}
}

// List returns the rules for every connection, in the order they apply.
func (s *Set) List() []RuleStatus {
	rules := s.load()
	out := make([]RuleStatus, len(rules))
	for i, e := range rules {
		out[i] = status(e, "all", e.applied.Load())
	}
	return out
}

// Add appends r to the rules for every connection; a rule without name= is named by the number
// of rules added so far ("#4 drop").
func (s *Set) Add(r *Rule) error {
	s.load()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.add(&s.rules, r)
}

// add appends r to *list; the caller holds wmu.
func (s *Set) add(list *atomic.Pointer[[]*entry], r *Rule) error {
	if err := CheckTransports([]*Rule{r}, s.Device, s.Broker); err != nil {
		return err
	}
	if !r.named {
		r.Name = fmt.Sprintf("#%d %s", s.next+1, r.action)
	}
	old := *list.Load()
	if slices.ContainsFunc(old, func(e *entry) bool { return e.Name == r.Name }) {
		return fmt.Errorf("%w: %s", ErrExists, r.Name)
	}
	s.next++
	nl := append(slices.Clip(old), &entry{Rule: r})
	list.Store(&nl)
	return nil
}

// remove takes the rule named name out of *list; the caller holds wmu.
func remove(list *atomic.Pointer[[]*entry], name string) (*entry, error) {
	old := *list.Load()
	i := slices.IndexFunc(old, func(e *entry) bool { return e.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoRule, name)
	}
	nl := slices.Delete(slices.Clone(old), i, i+1)
	list.Store(&nl)
	return old[i], nil
}

// Remove takes the rule named name out of the rules for every connection; frames already past
// it keep what it did.
func (s *Set) Remove(name string) (RuleStatus, error) {
	s.load()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	e, err := remove(&s.rules, name)
	if err != nil {
		return RuleStatus{}, err
	}
	return status(e, "all", e.applied.Load()), nil
}

// conn returns connection id's state while its stages run.
func (s *Set) conn(id int) (*connState, error) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	cs := s.conns[id]
	if cs == nil {
		return nil, fmt.Errorf("%w: %d", ErrNoConn, id)
	}
	return cs, nil
}

// ConnRules returns connection id's own rules, then the rules for every connection, in the
// order they apply, each with the times it was applied on that connection.
func (s *Set) ConnRules(id int) ([]RuleStatus, error) {
	cs, err := s.conn(id)
	if err != nil {
		return nil, err
	}
	own, all := *cs.rules.Load(), s.load()
	out := make([]RuleStatus, 0, len(own)+len(all))
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, e := range own {
		out = append(out, status(e, "connection", int64(cs.applied(e.Rule))))
	}
	for _, e := range all {
		out = append(out, status(e, "all", int64(cs.applied(e.Rule))))
	}
	return out, nil
}

// applied is how many times r was applied on the connection; the caller holds cs.mu.
func (cs *connState) applied(r *Rule) int {
	if c := cs.counts[r]; c != nil {
		return c.applied
	}
	return 0
}

// AddConn appends r to connection id's own rules, which apply before the rules for every
// connection; a rule without name= is named as by Add.
func (s *Set) AddConn(id int, r *Rule) error {
	cs, err := s.conn(id)
	if err != nil {
		return err
	}
	s.load()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.add(&cs.rules, r)
}

// RemoveConn takes the rule named name out of connection id's own rules; name "" takes them
// all. It returns what was removed, with the times each was applied.
func (s *Set) RemoveConn(id int, name string) ([]RuleStatus, error) {
	cs, err := s.conn(id)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	var gone []*entry
	if name == "" {
		gone = *cs.rules.Swap(new([]*entry))
	} else if e, err := remove(&cs.rules, name); err != nil {
		s.wmu.Unlock()
		return nil, err
	} else {
		gone = []*entry{e}
	}
	s.wmu.Unlock()
	out := make([]RuleStatus, len(gone))
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i, e := range gone {
		out[i] = status(e, "connection", int64(cs.applied(e.Rule)))
	}
	return out, nil
}
