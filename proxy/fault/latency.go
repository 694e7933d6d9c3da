package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("latency", "d=DURATION [jitter=DURATION]", "hold each frame d after it was read, ± a seeded jitter",
		func(r *Rule, params map[string]token) (Fault, error) {
			d, err := takeDuration(params, "d", -1)
			if err != nil {
				return nil, err
			}
			j, err := takeDuration(params, "jitter", 0)
			if err != nil {
				return nil, err
			}
			return &Latency{D: d, Jitter: j}, nil
		})
}

// Latency holds each frame D, plus or minus up to Jitter, after it was read; frames keep their
// order (one never goes before the one read before it).
type Latency struct {
	D, Jitter time.Duration
	env       *dirEnv
	last      time.Time
}

func (l *Latency) open(env *dirEnv) Fault { return &Latency{D: l.D, Jitter: l.Jitter, env: env} }

func (l *Latency) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	d := l.D
	if l.Jitter > 0 {
		d += time.Duration((2*l.env.float64() - 1) * float64(l.Jitter))
	}
	at := f.Time.Add(max(d, 0))
	if at.Before(l.last) {
		at = l.last
	}
	l.last = at
	return Result{Out: [][]byte{f.Bytes}, At: []time.Time{at}, Did: fmt.Sprintf("%s held %v", describe(f), at.Sub(f.Time))}, nil
}
