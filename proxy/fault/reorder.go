package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("reorder", "[frames=N]", "hold an acknowledgement and send it after the next N frames of\nits direction (default 1); acknowledgements selected meanwhile pass",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(ackTypes...); err != nil {
				return nil, err
			}
			n, err := takeInt(params, "frames", 1, 1, 1<<20)
			return &Reorder{Frames: n}, err
		})
}

// Reorder holds the frame until Frames other frames of its direction have gone on, then sends
// it. While one is held, the frames the rule selects pass (they are the ones it goes after).
type Reorder struct{ Frames int }

func (r *Reorder) Apply(*proxy.Frame, *Values) (Result, error) {
	return Result{}, fmt.Errorf("reorder works in a proxy's pipeline only")
}

func (r *Reorder) open(env *dirEnv) Fault { return &reorderIn{Reorder: r, env: env} }

// reorderIn is a Reorder in one direction of a connection.
type reorderIn struct {
	*Reorder
	env  *dirEnv
	held []byte // the frame held, nil when none
	what string
	typ  decode.Type
	left int // frames still to go before it
}

func (r *reorderIn) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	if r.held != nil {
		return Result{Skip: true}, nil
	}
	r.held = append([]byte(nil), f.Bytes...)
	r.what, r.typ, r.left = describe(f), f.Type, r.Frames
	return Result{Did: fmt.Sprintf("%s held until %d more frame(s) have gone on", r.what, r.Frames)}, nil
}

func (r *reorderIn) followed(f *proxy.Frame, sent int, emit func([]byte) error) error {
	if r.held == nil || sent == 0 {
		return nil
	}
	if r.left -= sent; r.left > 0 {
		return nil
	}
	b := r.held
	r.held = nil
	r.env.report(r.typ, fmt.Sprintf("%s sent after %d frame(s), the last %s", r.what, r.Frames, describe(f)), b, [][]byte{b})
	return emit(b)
}

func (r *reorderIn) end() {
	if r.held != nil {
		r.env.report(r.typ, fmt.Sprintf("%s held for reordering never sent: %v", r.what, proxy.ErrDirClosed), r.held, nil)
		r.held = nil
	}
}
