package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

func init() {
	register("reset", "[bytes=N]", "reset the connection (TCP RST to both sides, linger 0) instead of the\nselected frame (after it with after=TYPE), or once N bytes of the\nframes it selects have passed (all of the direction's when it selects\nevery frame; a frame cut there); not towards the embedded broker",
		func(r *Rule, params map[string]token) (Fault, error) {
			n, err := takeInt(params, "bytes", 0, 1, 1<<62)
			return &Reset{Bytes: n}, err
		})
}

// Reset resets the connection at the selected frame, or once Bytes bytes of the frames it
// selects have passed (the frame they end in cut there): the direction's bytes when the rule
// selects every frame, a type's when it has type=.
type Reset struct {
	Bytes int
	sent  int
}

func (r *Reset) open(env *dirEnv) Fault { return &Reset{Bytes: r.Bytes} }

func (*Reset) afterOK() {}

// checkTransports refuses a reset towards a side in memory, which has no reset.
func (*Reset) checkTransports(r *Rule, device, broker stream.Transport) error {
	if r.Dirs.has(stream.C2S) && broker == stream.Memory {
		return fmt.Errorf("reset towards the embedded broker: its connection is in memory and has no reset (dir=s2c resets the device's side)")
	}
	if r.Dirs.has(stream.S2C) && device == stream.Memory {
		return fmt.Errorf("reset towards the device: its connection is in memory and has no reset")
	}
	return nil
}

func (r *Reset) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	if r.Bytes == 0 {
		return Result{Did: "connection reset at " + describe(f), Reset: true}, nil
	}
	if r.sent >= r.Bytes {
		return Result{Skip: true}, nil
	}
	n := len(f.Bytes)
	if r.sent+n < r.Bytes {
		r.sent += n
		return Result{Skip: true}, nil
	}
	keep := r.Bytes - r.sent
	r.sent = r.Bytes
	did := fmt.Sprintf("connection reset after %d bytes, after %s", r.Bytes, describe(f))
	if keep < n {
		did = fmt.Sprintf("connection reset after %d bytes, %d of the %d of %s sent", r.Bytes, keep, n, describe(f))
	}
	return Result{Out: [][]byte{f.Bytes[:keep]}, Did: did, Reset: true}, nil
}
