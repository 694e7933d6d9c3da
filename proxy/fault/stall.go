package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("stall", "[d=DURATION]", "swallow the selected frames (type=PINGRESP trips the device's keep alive);\nwith d, those that come within d of the first one, then let them pass",
		func(r *Rule, params map[string]token) (Fault, error) {
			d, err := takeDuration(params, "d", 0)
			return &Stall{D: d}, err
		})
}

// Stall swallows the frames selected; with D, only those within D of the first.
type Stall struct {
	D     time.Duration
	until time.Time // zero until the first frame
}

func (s *Stall) open(env *dirEnv) Fault { return &Stall{D: s.D} }

func (s *Stall) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	if s.D == 0 {
		return Result{Did: fmt.Sprintf("%s stalled (swallowed, %d bytes)", describe(f), len(f.Bytes))}, nil
	}
	if s.until.IsZero() {
		s.until = f.Time.Add(s.D)
	}
	if !f.Time.Before(s.until) {
		return Result{Skip: true}, nil
	}
	return Result{Did: fmt.Sprintf("%s stalled (swallowed, %d bytes), %v of the stall left", describe(f), len(f.Bytes), s.until.Sub(f.Time))}, nil
}
