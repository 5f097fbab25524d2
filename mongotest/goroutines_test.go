package mongotest_test

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// serverPkg prefixes the function names of mongotest's own code in a
// stack trace (its tests live in mongotest_test and do not match).
const serverPkg = "github.com/go-changestream/changestream/mongotest."

// goroutineStacks returns the stack of every goroutine by goroutine id.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		hdr, _, _ := strings.Cut(g, "\n") // "goroutine 12 [running]:"
		if f := strings.Fields(hdr); len(f) >= 2 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

// runsServerCode tells whether a goroutine's stack holds a frame of
// mongotest or was created by it.
func runsServerCode(stack string) bool {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(strings.TrimPrefix(line, "created by "), serverPkg) {
			return true
		}
	}
	return false
}

// checkGoroutines snapshots the goroutines now and returns a function that
// fails the test if a goroutine started since then runs mongotest code.
// Call the function after the server's Close returned. Close joins every
// goroutine the server started (a WaitGroup), so the check is structural;
// the only thing awaited is the instant between a goroutine's deferred
// wg.Done and its exit, with a bounded poll as a last resort. Goroutines of
// the test runner, of the test itself and of the driver are ignored.
func checkGoroutines(t *testing.T) func() {
	t.Helper()
	before := goroutineStacks()
	leaked := func() []string {
		var out []string
		for id, stack := range goroutineStacks() {
			if _, old := before[id]; !old && runsServerCode(stack) {
				out = append(out, stack)
			}
		}
		return out
	}
	return func() {
		t.Helper()
		left := leaked()
		for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = leaked() {
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
		for _, stack := range left {
			t.Errorf("goroutine survived Close:\n%s", stack)
		}
	}
}
