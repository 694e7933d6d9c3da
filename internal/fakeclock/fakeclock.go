// Package fakeclock is a clock for tests that moves only when told (Advance), so that what
// waits or happens later (a delayed acknowledgement, latency) is tested without sleeping. It
// has the methods of proxy.Clock.
package fakeclock

import (
	"slices"
	"sync"
	"time"
)

// Clock is a fake clock. Timers set on it fire during Advance, on the goroutine that calls
// Advance, in the order of their times (and of their setting, for equal times).
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*timer
	set    chan struct{} // closed and replaced whenever a timer is set
}

type timer struct {
	at  time.Time
	seq uint64
	f   func()
}

// New is a clock at start.
func New(start time.Time) *Clock {
	return &Clock{now: start, set: make(chan struct{})}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f during the Advance that reaches d from now; stop cancels it, reporting
// whether it did so before f was called. A d of 0 or less fires at the next Advance.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	close(c.set)
	c.set = make(chan struct{})
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

// Advance moves the clock d forward, firing the timers due on the way, each at its own time
// (Now, seen from a timer's function, is that timer's time), including timers those functions
// set within d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		i := -1
		for j, t := range c.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at) || (t.at.Equal(c.timers[i].at) && t.seq < c.timers[i].seq)) {
				i = j
			}
		}
		if i < 0 {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

// Timers is the number of timers set and not yet fired nor stopped.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitTimers waits until at least n timers are set, or until the real time limit has passed
// (a safety net for a test that would otherwise hang); it reports whether they were.
func (c *Clock) WaitTimers(n int, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, set := len(c.timers), c.set
		c.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-set:
		case <-deadline.C:
			return false
		}
	}
}
