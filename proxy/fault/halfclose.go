package fault

import (
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("half_close", "", "close the sending half towards the receiver (dir=c2s: the broker; s2c: the\ndevice) instead of the selected frame (after it with after=TYPE): TCP FIN,\nTLS close_notify, WebSocket close; the other direction goes on",
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
