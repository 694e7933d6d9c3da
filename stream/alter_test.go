package stream

import "testing"

// TestAlterQueue: whole frames match the alteration that sent them, in order; pieces of a frame
// match too (the first piece says so); other bytes match nothing.
func TestAlterQueue(t *testing.T) {
	var q AlterQueue
	a := &Alteration{Rule: "a", After: [][]byte{{1, 2, 3}, {4, 5}}, Kept: 1}
	b := &Alteration{Rule: "b", After: [][]byte{{7, 7}}}
	q.Add(a)
	q.Add(b)
	q.Add(&Alteration{Rule: "dropped"}) // sent nothing: not queued
	if _, _, ok := q.Match([]byte{4, 5}); ok {
		t.Error("a's second frame matched before its first")
	}
	if got, i, ok := q.Match([]byte{7, 7}); !ok || got != b || i != 0 {
		t.Errorf("b: %v %d %v", got, i, ok)
	}
	if got, i, first, ok := q.Piece([]byte{1}); !ok || got != a || i != 0 || !first {
		t.Errorf("first piece: %v %d %v %v", got, i, first, ok)
	}
	if _, _, ok := q.Match([]byte{1, 2, 3}); ok {
		t.Error("a frame half seen in pieces matched whole")
	}
	if got, i, first, ok := q.Piece([]byte{2, 3}); !ok || got != a || i != 0 || first {
		t.Errorf("second piece: %v %d %v %v", got, i, first, ok)
	}
	if got, i, ok := q.Match([]byte{4, 5}); !ok || got != a || i != 1 || q.Len() != 0 {
		t.Errorf("a's second frame: %v %d %v, %d left", got, i, ok, q.Len())
	}
	for n := range maxAlterQueue + 1 {
		if pushed := q.Add(&Alteration{After: [][]byte{{byte(n)}}}); (pushed != nil) != (n == maxAlterQueue) {
			t.Errorf("add %d pushed %v", n, pushed)
		}
	}
	if d := q.Drain(); len(d) != maxAlterQueue || q.Len() != 0 {
		t.Errorf("drained %d", len(d))
	}
}
