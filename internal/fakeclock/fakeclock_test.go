package fakeclock

import (
	"slices"
	"testing"
	"time"
)

// TestAdvance: timers fire in the order of their times (of their setting for equal times), each
// seeing its own time as Now; a timer set by another within the advance fires in it when due;
// a stopped one never fires; the clock ends at the advance's end.
func TestAdvance(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := New(t0)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Now().Sub(t0).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, func() {
		at("a")()
		c.AfterFunc(time.Second, at("a+1")) // due at 2s
		c.AfterFunc(time.Hour, at("late"))
	})
	c.AfterFunc(3*time.Second, at("d"))
	stop := c.AfterFunc(2*time.Second, at("stopped"))
	if !stop() || stop() {
		t.Fatal("stop did not report the first stop only")
	}
	if n := c.Timers(); n != 3 {
		t.Fatalf("%d timers set, want 3", n)
	}
	c.Advance(5 * time.Second)
	want := []string{"a@1s", "a+1@2s", "c@3s", "d@3s"}
	if !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	if now := c.Now(); !now.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("clock at %v after the advance", now.Sub(t0))
	}
	if n := c.Timers(); n != 1 {
		t.Errorf("%d timers left, want the one due in an hour", n)
	}
	if !c.WaitTimers(1, time.Second) || c.WaitTimers(2, 10*time.Millisecond) {
		t.Error("WaitTimers does not see the one timer set")
	}
}
