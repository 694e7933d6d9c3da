package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapBound lowers the heap goal of a small live heap: reading runs with GOGC 400 (most of
// what it allocates dies young), which lets the heap grow to five times what is live; after each
// collection the soft memory limit is set to the larger of floor and twice the live heap, so a
// run whose live heap is 20 MB peaks near floor instead of 100 MB more, and one whose live heap
// is large still has room to breathe (the limit never comes near what is live). Nothing is
// done when GOMEMLIMIT is set. stop restores the limit.
func heapBound(floor int64) (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	prev := debug.SetMemoryLimit(floor)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// A finalizer runs once after each collection that finds its object unreachable: it sets
	// the limit and arms itself again.
	type sentinel struct{ _ *byte }
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				debug.SetMemoryLimit(max(floor, 2*int64(sample[0].Value.Uint64())))
			}
			arm()
		})
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		debug.SetMemoryLimit(prev)
	}
}
