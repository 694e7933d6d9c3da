package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("reuse_id", "", "give a QoS 1/2 PUBLISH the Packet Identifier of one still in\nflight (the lowest); skipped while none is",
		func(r *Rule, params map[string]token) (Fault, error) {
			return ReuseID{}, r.onlyTypes(decode.PUBLISH)
		})
}

// ReuseID rewrites a QoS 1 or 2 PUBLISH's Packet Identifier to the lowest one its sender still
// has in flight.
type ReuseID struct{}

func (ReuseID) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publishOf(f)
	if p == nil || p.QoS == 0 {
		return Result{Skip: true}, nil
	}
	var reuse uint16
	for _, id := range f.State.InFlightIDs(f.Dir) {
		if id != p.PacketID {
			reuse = id
			break
		}
	}
	if reuse == 0 {
		return Result{Skip: true}, nil
	}
	from := p.PacketID
	p.PacketID = reuse
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	return Result{Out: out, Did: fmt.Sprintf("PUBLISH id %d sent with Packet Identifier %d, still in flight", from, reuse),
		Used: fmt.Sprintf("in_flight=%d", v.InFlight)}, nil
}
