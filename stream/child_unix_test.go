//go:build unix

package stream_test

import (
	"os"
	"os/exec"
	"testing"
)

// startChildTest runs this test binary again as a child process that runs
// only the test named test, with env added to this process's environment
// and the write end of a pipe as its file descriptor 3; it returns the
// child and the pipe's read end, which the caller reads and closes.
// prepare, when not nil, is applied to the write end before the child
// starts. The crash, snapshot-crash and HA tests start their children so.
func startChildTest(t *testing.T, test string, env []string, prepare func(w *os.File)) (*exec.Cmd, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(w)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	return cmd, r
}
