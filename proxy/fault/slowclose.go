package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("slow_close", "d=DURATION", "hold the close of the direction (its sender's FIN or reset) d before\npassing it on",
		func(r *Rule, params map[string]token) (Fault, error) {
			d, err := takeDuration(params, "d", -1)
			return &SlowClose{D: d}, err
		})
}

// SlowClose holds the end of its direction's sender D before it is passed on; frames pass.
type SlowClose struct {
	D   time.Duration
	env *dirEnv
}

func (s *SlowClose) open(env *dirEnv) Fault { return &SlowClose{D: s.D, env: env} }

func (s *SlowClose) Apply(*proxy.Frame, *Values) (Result, error) { return Result{Skip: true}, nil }

func (s *SlowClose) holdEnd() (string, error) {
	if err := s.env.env.Sleep(s.D); err != nil {
		return "", err
	}
	return fmt.Sprintf("close held %v", s.D), nil
}
