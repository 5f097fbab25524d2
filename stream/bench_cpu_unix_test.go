//go:build unix

package stream_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used:
// the benchmarks report events per CPU second besides events per second,
// because on a shared machine CPU time varies much less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
