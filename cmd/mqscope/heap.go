package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
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

// heapProfileAtEnd wraps a progress callback: once 99% of the files' bytes are read (or the
// percentage after an @ in name: "heap.prof@80"), it writes a heap profile (after a collection)
// to name, once. Files it cannot stat count as empty.
func heapProfileAtEnd(files []string, name string, next func(int64)) func(int64) {
	pct := int64(99)
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		if n, err := strconv.Atoi(name[i+1:]); err == nil && n > 0 && n <= 100 {
			name, pct = name[:i], int64(n)
		}
	}
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	done := false
	return func(read int64) {
		if next != nil {
			next(read)
		}
		if done || read < total/100*pct {
			return
		}
		done = true
		runtime.GC()
		if f, err := os.Create(name); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}
