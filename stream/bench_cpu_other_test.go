//go:build !unix

package stream_test

import "time"

// processCPU is not measured on this platform: events/cpu-s is not
// reported.
func processCPU() time.Duration { return 0 }
