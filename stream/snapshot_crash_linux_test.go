//go:build linux

package stream_test

import (
	"os"
	"syscall"
)

// shrinkPipe makes the pipe of f as small as Linux allows (a page), so that
// a child cannot run far ahead of what the parent has read: the parent's
// choice of when to kill then follows what the child is doing.
func shrinkPipe(f *os.File) {
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETPIPE_SZ, 4096)
}
