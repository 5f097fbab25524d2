//go:build unix

package stream_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// standaloneServer returns the URI of a deployment in a process of its
// own: MONGODB_URI when it is set, otherwise cmd/mongotest, built (with
// -race when this binary has it, so that the build reuses the test
// build's packages) and started on a free port, and stopped at cleanup.
// The HA and group tests kill and stop processes around a server that
// none of those signals reach.
func standaloneServer(t *testing.T) string {
	t.Helper()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return uri
	}
	bin := filepath.Join(t.TempDir(), "mongotest")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/go-changestream/changestream/cmd/mongotest")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/mongotest: %v\n%s", err, out)
	}
	srv := exec.Command(bin, "-addr", "127.0.0.1:0")
	srv.Stderr = os.Stderr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		if err := srv.Wait(); err != nil {
			t.Errorf("cmd/mongotest: %v", err)
		}
	})
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("cmd/mongotest printed no URI: %v", sc.Err())
	}
	uri := strings.TrimSpace(sc.Text())
	go func() { // keep reading so that the server never blocks on its output
		for sc.Scan() {
		}
	}()
	return uri
}
