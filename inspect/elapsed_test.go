package inspect

import (
	"math"
	"testing"
	"time"
)

func TestElapsedIsSub(t *testing.T) {
	base := time.Unix(1764000000, 123456789)
	times := []time.Time{
		base, base.Add(time.Nanosecond), base.Add(-time.Nanosecond), base.Add(90 * time.Second),
		base.Add(-1500 * time.Millisecond), time.Unix(0, 0), time.Unix(1<<33, 999999999),
		time.Unix(-(1 << 33), 0), time.Unix(1<<40, 5), time.Unix(-(1 << 40), 0),
		time.Unix(math.MaxInt64/1_000_000_000, 0), {}, time.Unix(4294967295, 999999999).In(time.FixedZone("x", 3600)),
	}
	now := time.Now() // with a monotonic clock reading, which Sub prefers to the wall clock
	later := now.Add(time.Second)
	times = append(times, now, later)
	for _, a := range times {
		for _, b := range times {
			if got, want := elapsed(a, b), a.Sub(b); got != want {
				t.Errorf("elapsed(%v, %v) = %v, Sub says %v", a, b, got, want)
			}
		}
	}
}
