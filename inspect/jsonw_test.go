package inspect

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendJSONTime(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("plus", 5*3600+30*60), time.FixedZone("minus", -(9*3600 + 15*60)),
		time.FixedZone("seconds", 3600+17), time.FixedZone("neg-seconds", -45)}
	if l, err := time.LoadLocation("Europe/Paris"); err == nil {
		zones = append(zones, l)
	}
	times := []time.Time{time.Unix(0, 0), time.Unix(1767225600, 100414000), time.Unix(1767225600, 999999999),
		time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), {}}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		times = append(times, time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)))
	}
	for _, tm := range times {
		for _, z := range zones {
			tz := tm.In(z)
			want := `"` + tz.Format(TimeFormat) + `"`
			if got := string(appendJSONTime(nil, tz)); got != want {
				t.Errorf("%v: got %s, want %s", tz, got, want)
			}
		}
	}
}
