//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package stream

// fileLocking reports whether FileStore takes OS file locks here.
const fileLocking = false

// lock does nothing on this system: FileStore takes no OS file lock here
// (see FileStore).
func (f *FileStore) lock(name string) (func() error, error) {
	if _, err := f.lockPath(name); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}
