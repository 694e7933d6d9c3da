package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("delay", "d=DURATION [jitter=DURATION]", "send an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,\nUNSUBACK) d later, plus up to jitter (seeded), while others pass",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(ackTypes...); err != nil {
				return nil, err
			}
			d, err := takeDuration(params, "d", -1)
			if err != nil {
				return nil, err
			}
			j, err := takeDuration(params, "jitter", 0)
			return &Delay{D: d, Jitter: j}, err
		})
}

// Delay sends the frame D later (plus a random part of Jitter) on the pipeline's clock; the
// frames that come meanwhile pass.
type Delay struct {
	D, Jitter time.Duration
}

func (d *Delay) Apply(*proxy.Frame, *Values) (Result, error) {
	return Result{}, fmt.Errorf("delay works in a proxy's pipeline only")
}

func (d *Delay) open(env *dirEnv) Fault { return &delayIn{Delay: d, env: env} }

// delayIn is a Delay in one direction of a connection.
type delayIn struct {
	*Delay
	env *dirEnv
}

func (d *delayIn) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	wait := d.D
	if d.Jitter > 0 {
		wait += time.Duration(d.env.float64() * float64(d.Jitter))
	}
	what := describe(f)
	if err := d.env.sendLater(wait, f.Type, append([]byte(nil), f.Bytes...), fmt.Sprintf("%s, delayed %v", what, wait)); err != nil {
		return Result{}, err
	}
	return Result{Did: fmt.Sprintf("%s held, to be sent %v later", what, wait)}, nil
}
