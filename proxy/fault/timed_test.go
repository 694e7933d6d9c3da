package fault

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// autoClock is a clock on which a wait passes at once, moving the clock to its end: what went
// out when is then exact, with no real time passing.
type autoClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *autoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *autoClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	c.now = c.now.Add(max(d, 0))
	c.mu.Unlock()
	f()
	return func() bool { return false }
}

// reach moves the clock to t unless it is past it.
func (c *autoClock) reach(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.Before(t) {
		c.now = t
	}
}

// timedFrame is a frame read at t0+at.
type timedFrame struct {
	dir stream.Dir
	at  time.Duration
	b   []byte
}

// sent is what a stage emitted, when (since t0), for which input frame (call).
type sent struct {
	dir  stream.Dir
	call int
	at   time.Duration
	b    []byte
}

// timedRun is what runTimed saw.
type timedRun struct {
	sent    []sent
	applied []Applied
	err     error // the error that ended the run
	errCall int   // the frame that ended it
	clock   *autoClock
	stages  [2]proxy.Stage
}

// reportingSet is a Set of the rules that appends each fault applied to applied.
func reportingSet(t testing.TB, applied *[]Applied, rules ...string) *Set {
	t.Helper()
	rs, err := ParseAll(rules)
	if err != nil {
		t.Fatal(err)
	}
	return &Set{Rules: rs, Report: func(a Applied) { *applied = append(*applied, a) }}
}

// runTimed passes frames, each read at its time, through a set of the rules (one connection,
// seed 1,2) on an autoClock.
func runTimed(t testing.TB, view inspect.View, rules []string, frames []timedFrame) *timedRun {
	t.Helper()
	tr := &timedRun{clock: &autoClock{now: t0}, errCall: -1}
	set := reportingSet(t, &tr.applied, rules...)
	conn := &stream.Conn{ID: 1}
	env := proxy.StageEnv{Now: tr.clock.Now, Clock: tr.clock, Rand: rand.New(rand.NewPCG(1, 2)), Done: make(chan struct{})}
	for d := range tr.stages {
		tr.stages[d] = set.Stages(conn, stream.Dir(d), env)[0]
	}
	for i, tf := range frames {
		tr.clock.reach(t0.Add(tf.at))
		f := &proxy.Frame{Conn: conn, Dir: tf.dir, Time: t0.Add(tf.at), Type: typeOf(tf.b), Bytes: tf.b, State: view}
		err := tr.stages[tf.dir].Frame(f, func(b []byte) error {
			tr.sent = append(tr.sent, sent{tf.dir, i, tr.clock.Now().Sub(t0), append([]byte(nil), b...)})
			return nil
		})
		if err != nil {
			tr.err, tr.errCall = err, i
			break
		}
	}
	return tr
}

// in returns what was sent in dir.
func (tr *timedRun) in(dir stream.Dir) []sent {
	var s []sent
	for _, x := range tr.sent {
		if x.dir == dir {
			s = append(s, x)
		}
	}
	return s
}

func typeOf(b []byte) decode.Type { return decode.Type(b[0] >> 4) }
