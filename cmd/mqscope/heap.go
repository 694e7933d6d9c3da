package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"

	"github.com/mqscope/mqscope/internal/hugepage"
)

// heapBound sets the garbage collector's policy while reading. Most of what reading allocates
// dies young, so collecting seldom saves CPU time; but each first touch of a fresh page is a
// page fault, and on a virtual machine with two CPUs a costly one (about 17 µs per 4 KiB page
// here), so a large heap costs its faults once. A short run gains from a small heap, a long
// one from few collections: reading starts at a low GOGC and goes to 400 once it has
// allocated rampAfter bytes. Where Linux gives the heap huge pages (hugepage.Heap: a fault per
// 2 MiB), it starts at GOGC 200 on a heap grown by 64 MiB first (never touched; advised before
// it is used); without them at GOGC 100. 400,000 packets of one connection with huge pages,
// alternating runs, CPU ms: --summary 460 starting at GOGC 100 against 360 at 400 (medians of
// 6), about the same at 200 and 400 (7-9 runs, three times); --format jsonl 608 at 400, 556 at
// 200 (9 runs). (The switch at 1 GiB instead cost
// 100,000 closed connections 10-25% more CPU time: 71 collections instead of 42.) At GOGC 400
// the soft memory limit is the larger of floor and twice the live heap, so a small live heap
// does not grow to five times its size (a run whose live heap is 20 MB peaks near floor
// instead of 100 MB), and a large one still has room. Nothing is done when GOGC or GOMEMLIMIT
// is set. stop restores both.
func heapBound(floor int64) (stop func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	const rampAfter = 256 << 20
	start, grow := 100, 0
	if hugepage.Enabled() {
		start, grow = 200, 64<<20
	}
	var mu sync.Mutex
	stopped, raised := false, false
	// No collection while the heap grows: one would count the block as live, and five times
	// that would be the next heap goal.
	prevGC := debug.SetGCPercent(-1)
	hugepage.Heap(grow)
	debug.SetGCPercent(start)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
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
			hugepage.Heap(0) // what the heap mapped since
			live, allocs := sample[0].Value, sample[1].Value
			if !raised && allocs.Kind() == metrics.KindUint64 && allocs.Uint64() >= rampAfter {
				raised = true
				debug.SetGCPercent(400)
			}
			if raised && live.Kind() == metrics.KindUint64 {
				debug.SetMemoryLimit(max(floor, 2*int64(live.Uint64())))
			}
			arm()
		})
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	}
}

// heapProfileAtEnd wraps a progress callback: once 99% of the files' bytes are read (or the
// percentage after an @ in name: "heap.prof@80"), it writes a heap profile (after a collection)
// to name, once. Files it cannot stat count as empty. The file is created now, so that a bad
// name fails before the reading; done closes it and says whether the profile was written.
func heapProfileAtEnd(files []string, name string, next func(int64)) (progress func(int64), done func() error, err error) {
	pct := int64(99)
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		if n, err := strconv.Atoi(name[i+1:]); err == nil && n > 0 && n <= 100 {
			name, pct = name[:i], int64(n)
		}
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, fmt.Errorf("--memprofile: %w", err)
	}
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	written := false
	var werr error
	progress = func(read int64) {
		if next != nil {
			next(read)
		}
		if written || read < total/100*pct {
			return
		}
		written = true
		runtime.GC()
		werr = pprof.WriteHeapProfile(f)
	}
	done = func() error {
		cerr := f.Close()
		switch {
		case werr != nil:
			return fmt.Errorf("--memprofile %s: %w", name, werr)
		case cerr != nil:
			return fmt.Errorf("--memprofile %s: %w", name, cerr)
		case !written:
			return fmt.Errorf("--memprofile %s: the reading ended before %d%% of the input", name, pct)
		}
		return nil
	}
	return progress, done, nil
}
