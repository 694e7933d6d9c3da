package fault

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// dirFault is a Fault that keeps state per connection direction, or acts outside the frame it
// selected (later, or after other frames): open makes its instance for one direction of a
// connection, and the rule applies that instance there.
type dirFault interface {
	Fault
	open(d *dirEnv) Fault
}

// dirEnv is what an instance of a dirFault works with: its direction's pipeline (the clock,
// Later) and a way to report what it does outside Apply.
type dirEnv struct {
	env  proxy.StageEnv
	conn *stream.Conn
	dir  stream.Dir
	rule *Rule
	set  *Set
}

// now is the pipeline's time.
func (d *dirEnv) now() time.Time {
	switch {
	case d.env.Clock != nil:
		return d.env.Clock.Now()
	case d.env.Now != nil:
		return d.env.Now()
	}
	return time.Now()
}

// float64 draws from the pipeline's random source (shared by every connection).
func (d *dirEnv) float64() float64 {
	d.set.rmu.Lock()
	defer d.set.rmu.Unlock()
	if d.env.Rand == nil {
		d.env.Rand = rand.New(rand.NewPCG(1, 2))
	}
	return d.env.Rand.Float64()
}

// report tells the observers (StageEnv.Alter) and the set's Report what the instance did
// outside Apply (a frame sent late, frames released or never sent), before it sends after: a
// frame of type typ, before the frames as they came, after what is sent (none: not sent).
func (d *dirEnv) report(typ decode.Type, did string, before []byte, after [][]byte) {
	if d.env.Alter != nil {
		d.env.Alter(&stream.Alteration{Rule: d.rule.Name, Did: did, Before: before, After: after})
	}
	if d.set.Report == nil {
		return
	}
	n := 0
	for _, b := range after {
		n += len(b)
	}
	d.set.Report(Applied{Time: d.now(), Conn: d.conn.ID, Dir: d.dir, Rule: d.rule.Name, Type: typ, Did: did,
		Before: len(before), After: n})
}

// follower is an instance that hears of every frame of its direction once the rules are done
// with it: sent is how many frames went on for f (0 when it was dropped or held). What it emits
// goes after them.
type follower interface {
	followed(f *proxy.Frame, sent int, emit func([]byte) error) error
}

// ender is an instance that holds frames: end is called when its direction has ended, so it
// reports what it never sent.
type ender interface {
	end()
}

func (st *stage) dirEnv(r *Rule) *dirEnv {
	return &dirEnv{env: st.env, conn: st.conn, dir: st.dir, rule: r, set: st.set}
}

// follow tells the instances that follow their direction of f.
func (st *stage) follow(f *proxy.Frame, sent int, emit func([]byte) error) error {
	for _, in := range st.order {
		if fo, ok := in.(follower); ok {
			if err := fo.followed(f, sent, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// ended tells the instances that hold frames that the direction ended: they report them.
func (st *stage) ended() {
	for _, in := range st.order {
		if e, ok := in.(ender); ok {
			e.end()
		}
	}
}

// ackTypes are the acknowledgements the ack faults act on.
var ackTypes = []decode.Type{decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP, decode.SUBACK, decode.UNSUBACK}

// takeDuration removes key from params and parses it as a Go duration (2s, 150ms); def when
// absent (< 0: required).
func takeDuration(params map[string]token, key string, def time.Duration) (time.Duration, error) {
	t, ok := params[key]
	if !ok {
		if def < 0 {
			return 0, fmt.Errorf("%s= is required", key)
		}
		return def, nil
	}
	delete(params, key)
	d, err := time.ParseDuration(t.val)
	if err != nil || d < 0 {
		return 0, t.errorf("%s: %q is not a duration such as 2s or 150ms", key, t.val)
	}
	return d, nil
}

// sendLater sends frame b (of type typ) d later on the pipeline's clock, reporting what became
// of it: what names it ("PUBACK id 7, delayed 2s").
func (d *dirEnv) sendLater(wait time.Duration, typ decode.Type, b []byte, what string) error {
	if d.env.Later == nil {
		return fmt.Errorf("%s: the pipeline cannot send later", what)
	}
	d.env.Later.After(wait, func(emit func([]byte) error) {
		d.report(typ, what+": sent", b, [][]byte{b})
		if err := emit(b); err != nil {
			d.report(typ, fmt.Sprintf("%s: not delivered: %v", what, err), b, nil)
		}
	}, func(err error) {
		d.report(typ, fmt.Sprintf("%s: never sent: %v", what, err), b, nil)
	})
	return nil
}
