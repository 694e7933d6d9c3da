//go:build unix

package inspect

import "syscall"

// cpuTime returns the process's user and system CPU time in nanoseconds: on a busy machine
// it measures work where wall time also measures waiting for a CPU.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
