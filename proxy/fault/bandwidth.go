package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("bandwidth", "rate=BYTES_PER_S", "pass at most rate bytes a second in the direction, in pieces of a tenth of\na second's worth",
		func(r *Rule, params map[string]token) (Fault, error) {
			rate, err := takeInt(params, "rate", required, 1, 1<<40)
			return &Bandwidth{Rate: rate}, err
		})
}

// Bandwidth lets Rate bytes a second through: a frame goes in pieces of a tenth of a second's
// worth, each once the bytes before it would have crossed a link of that rate.
type Bandwidth struct {
	Rate int
	env  *dirEnv
	next time.Time // when the link is free
}

func (b *Bandwidth) open(env *dirEnv) Fault { return &Bandwidth{Rate: b.Rate, env: env} }

func (b *Bandwidth) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	start := f.Time
	if start.Before(b.next) {
		start = b.next
	}
	piece := max(b.Rate/10, 1)
	res := Result{Pieces: true}
	for off := 0; off < len(f.Bytes); off += piece {
		end := min(off+piece, len(f.Bytes))
		res.Out = append(res.Out, f.Bytes[off:end])
		res.At = append(res.At, start.Add(b.transfer(end)))
	}
	b.next = res.At[len(res.At)-1]
	res.Did = fmt.Sprintf("%s passed at %d bytes/s, done %v after it was read", describe(f), b.Rate, b.next.Sub(f.Time))
	return res, nil
}

// transfer is how long n bytes take at the rate.
func (b *Bandwidth) transfer(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(b.Rate))
}
