//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package stream

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fileLocking reports whether FileStore takes OS file locks here.
const fileLocking = true

// lock takes an exclusive flock(2) on the stream's lock file (the
// checkpoint file's name with ".lock" in place of ".json"; the checkpoint
// file itself is replaced at every Save, so it cannot carry the lock). The
// lock belongs to the open file: it is released by unlock, or by the
// operating system when the process ends, however it ends.
func (f *FileStore) lock(name string) (func() error, error) {
	path, err := f.lockPath(name)
	if err != nil {
		return nil, err
	}
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("changestream: lock the checkpoint of stream %q: %w", name, err)
	}
	for {
		err = syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		file.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: stream %q: %s is locked by another process or another Stream of this one; a FileStore checkpoint has one consumer at a time", ErrStreamInUse, name, path)
		}
		return nil, fmt.Errorf("changestream: lock %s: %w", path, err)
	}
	return func() error {
		// Closing the file releases the lock. The lock file stays: removing
		// it would let a waiter lock a file no one else sees.
		return file.Close()
	}, nil
}
