package fault

import (
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("half_close", "", "close the sending half towards the receiver (dir=c2s: the broker;\ns2c: the device) instead of the selected frame (after it with\nafter=TYPE): TCP FIN or TLS close_notify, the other direction going on;\nover WebSocket a close frame, which the peer answers: both end",
		func(r *Rule, params map[string]token) (Fault, error) {
			return HalfClose{}, r.oneDir("half_close", "closes one side")
		})
}

// HalfClose closes the sending half towards the receiver of the rule's direction.
type HalfClose struct{}

func (HalfClose) afterOK() {}

func (HalfClose) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	return Result{Did: "half-closed towards the " + receiver(f.Dir) + " at " + describe(f), Shut: true}, nil
}
