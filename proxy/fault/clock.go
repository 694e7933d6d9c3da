package fault

import (
	"time"
)

// waitUntil waits until the pipeline's clock reaches t (StageEnv.Sleep); proxy.ErrDirClosed
// when the connection is being taken down first.
func (d *dirEnv) waitUntil(t time.Time) error { return d.env.Sleep(t.Sub(d.now())) }

// intN draws an integer in [0, n) from the pipeline's random source.
func (d *dirEnv) intN(n int) int { return int(d.float64() * float64(n)) }

// endHolder is a fault instance that holds its direction's end before it is passed on (a slow
// close): it says what it did.
type endHolder interface {
	holdEnd() (string, error)
}
