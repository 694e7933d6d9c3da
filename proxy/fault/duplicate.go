package fault

import "github.com/mqscope/mqscope/proxy"

func init() {
	register("duplicate", "", "send an acknowledgement (PUBACK ... UNSUBACK) twice",
		func(r *Rule, params map[string]token) (Fault, error) {
			return Duplicate{}, r.onlyTypes(ackTypes...)
		})
}

// Duplicate sends the frame twice, one copy right after the other.
type Duplicate struct{}

func (Duplicate) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	return Result{Out: [][]byte{f.Bytes, f.Bytes}, Did: describe(f) + " sent twice"}, nil
}
