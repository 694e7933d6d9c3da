package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("dup_resend", "[d=DURATION]", "send a QoS 1/2 PUBLISH, then again with DUP=1 and the same Packet\nIdentifier (d later when given)",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.PUBLISH); err != nil {
				return nil, err
			}
			d, err := takeDuration(params, "d", 0)
			return &DupResend{D: d}, err
		})
}

// DupResend sends a QoS 1 or 2 PUBLISH, then again with DUP set: at once, or D later (as a
// sender retransmits when it gets no acknowledgement).
type DupResend struct{ D time.Duration }

func (r *DupResend) Apply(f *proxy.Frame, v *Values) (Result, error) {
	return r.apply(f, nil)
}

func (r *DupResend) open(env *dirEnv) Fault { return &dupResendIn{r, env} }

type dupResendIn struct {
	*DupResend
	env *dirEnv
}

func (r *dupResendIn) Apply(f *proxy.Frame, _ *Values) (Result, error) { return r.apply(f, r.env) }

func (r *DupResend) apply(f *proxy.Frame, env *dirEnv) (Result, error) {
	p := publishOf(f)
	if p == nil || p.QoS == 0 {
		return Result{Skip: true}, nil
	}
	p.Dup = true
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	what := fmt.Sprintf("PUBLISH id %d", p.PacketID)
	if r.D == 0 {
		return Result{Out: [][]byte{f.Bytes, out[0]}, Did: what + " sent again with DUP=1"}, nil
	}
	if env == nil {
		return Result{}, fmt.Errorf("dup_resend d=%v works in a proxy's pipeline only", r.D)
	}
	if err := env.sendLater(r.D, f.Type, out[0], fmt.Sprintf("%s, resent with DUP=1 %v after it", what, r.D)); err != nil {
		return Result{}, err
	}
	return Result{Out: [][]byte{f.Bytes}, Did: fmt.Sprintf("%s sent; again with DUP=1 %v later", what, r.D)}, nil
}
