//go:build unix

package stream

import (
	"errors"
	"syscall"
)

// processGone reports whether no process with id pid runs: signal 0
// checks for the process without sending anything. A process of another
// user (EPERM) is running.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
