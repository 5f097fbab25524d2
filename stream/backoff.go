package stream

import (
	"math/rand/v2"
	"time"
)

// backoff computes the delays between attempts to watch again: none before
// the first attempt, then initial, doubling up to max, each jittered to
// between half and all of its value so that many streams failing together
// do not retry in step.
type backoff struct {
	initial, max time.Duration
}

// delay returns the delay before attempt n (1 for the first attempt).
func (b backoff) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := b.initial
	for i := 2; i < n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}
