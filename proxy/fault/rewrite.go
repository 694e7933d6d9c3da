package fault

import (
	"errors"
	"strings"

	"github.com/mqscope/mqscope/decode"
)

// rewritten encodes p, a packet a fault changed, as the fault's result: did says what was
// done, used the negotiated values it took. When p alone is malformed or breaks a rule of the
// protocol (alias 0, Session Present in a refusal), as a fault may make it on purpose, the
// result is marked so and did says why.
func rewritten(p decode.Packet, did, used string) (Result, error) {
	out, err := encode(p)
	if err != nil {
		return Result{}, err
	}
	if bad := broken(out[0], p.Info().Version); bad != "" {
		return Result{Out: out, Did: did + " (malformed: " + bad + ")", Used: used, Malformed: true}, nil
	}
	return Result{Out: out, Did: did, Used: used}, nil
}

// broken decodes a frame a fault made and returns what makes it malformed or a protocol error
// on its own ("" when nothing): the faults that make such frames on purpose say so.
func broken(b []byte, v decode.Version) string {
	var msgs []string
	for _, pr := range decode.Decode(b, v).Info().Problems {
		if pr.Level == decode.LevelError && (errors.Is(pr, decode.ErrMalformed) || errors.Is(pr, decode.ErrProtocol)) {
			msgs = append(msgs, pr.Message)
		}
	}
	return strings.Join(msgs, "; ")
}
