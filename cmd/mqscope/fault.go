package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/mqscope/mqscope/proxy/fault"
)

// faultReporter writes each fault applied to w as a line of text, for when the records (which
// show the faults in the timeline) are not printed. Connections report from their own
// goroutines; lines never interleave.
func faultReporter(w io.Writer) func(fault.Applied) {
	var mu sync.Mutex
	return func(a fault.Applied) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "mqscope: %s\n", a)
	}
}
