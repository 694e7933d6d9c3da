package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/stream"
)

// transportFault is a fault that does not apply to every transport.
type transportFault interface {
	checkTransports(r *Rule, device, broker stream.Transport) error
}

// CheckTransports checks that each rule applies to a proxy whose device side is device and
// whose broker side is broker (stream.Memory for the embedded broker): a reset, say, cannot
// reach a connection in memory. Call it when rules are added.
func CheckTransports(rules []*Rule, device, broker stream.Transport) error {
	for _, r := range rules {
		if tf, ok := r.Fault.(transportFault); ok {
			if err := tf.checkTransports(r, device, broker); err != nil {
				return fmt.Errorf("%w %q: %w", ErrRule, r.Text, err)
			}
		}
	}
	return nil
}
