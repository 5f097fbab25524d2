package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
)

// saverChildEnv selects the child role of TestFileStoreCrashLeavesNoTemps:
// its value is the directory to save into.
const saverChildEnv = "CHANGESTREAM_TEST_FILESTORE_SAVER"

// TestFileStoreSaverChild is the child process of the crash test: it saves
// checkpoints in a loop and prints a line after each, until it is killed.
func TestFileStoreSaverChild(t *testing.T) {
	dir := os.Getenv(saverChildEnv)
	if dir == "" {
		t.Skip("the child process of TestFileStoreCrashLeavesNoTemps")
	}
	fs, err := stream.NewFileStore(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	cp := sampleCheckpoint(t, realServerToken, time.Nanosecond)
	for i := 0; ; i++ {
		cp.UpdatedAt = time.Now()
		if err := fs.Save(context.Background(), "orders", cp); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("saved", i)
	}
}

// tempFiles returns the names of dir's temporary files of Saves.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".orders.checkpoint.json.") && strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Processes killed in the middle of a Save leave temporary files; the next
// FileStore that opens the directory removes them, and the checkpoint
// still loads.
func TestFileStoreCrashLeavesNoTemps(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows: a crashed writer's temporary file is only removed after ten minutes")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	// Each child's NewFileStore removes what the one before left, so
	// look after each kill, and stop after one that left a file.
	kills, seen, empty := 0, 0, 0
	var left []string
	for kills < 200 && (kills < 10 || len(left) == 0) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreSaverChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), saverChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Read the child's lines as they come, so that it never waits
		// on the pipe, and kill it after a varying number of saves: the
		// kill lands somewhere in a later one.
		saved := make(chan string)
		go func() {
			defer close(saved)
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				saved <- lines.Text()
			}
		}()
		for range 1 + kills%7 {
			l, ok := <-saved
			if !ok {
				break
			}
			if strings.HasPrefix(l, "error:") {
				t.Fatalf("child: %s", l)
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for range saved {
		}
		_ = cmd.Wait()
		kills++
		left = tempFiles(t, dir)
		seen += len(left)
		for _, name := range left {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Size() == 0 {
				empty++
			}
		}
	}
	t.Logf("%d kills left %d temporary files, %d of them empty", kills, seen, empty)
	if len(left) == 0 {
		t.Fatalf("%d kills left no temporary file: the test did not hit a Save", kills)
	}
	fs, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tempFiles(t, dir); len(got) != 0 {
		t.Errorf("after NewFileStore, temporary files %v are left", got)
	}
	if _, err := fs.Load(context.Background(), "orders"); err != nil {
		t.Errorf("Load after the crashes: %v", err)
	}
}

// NewFileStore removes stale temporary files of its own naming, and only
// those: not a Save in progress, not files of any other name or kind.
func TestFileStoreRemovesOnlyStaleTemps(t *testing.T) {
	dir := t.TempDir()
	// A process that ran and ended: its pid is free.
	done := exec.Command(os.Args[0], "-test.run=^$")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(done.ProcessState.Pid())
	me := strconv.Itoa(os.Getpid())
	parent := strconv.Itoa(os.Getppid())
	old := time.Now().Add(-time.Hour)
	files := []struct {
		name   string
		aged   bool
		dir    bool
		remove bool
	}{
		{name: ".orders.checkpoint.json." + dead + "-4711.tmp", remove: runtime.GOOS != "windows"},
		{name: ".my.stream-1.checkpoint.json." + dead + "-0.tmp", remove: runtime.GOOS != "windows"},
		{name: ".orders.checkpoint.json.123456.tmp", aged: true, remove: true},         // an earlier version's name
		{name: ".orders.checkpoint.json." + dead + "-9.tmp", aged: true, remove: true}, // old everywhere
		{name: ".orders.checkpoint.json.123457.tmp"},                                   // maybe being written
		{name: ".orders.checkpoint.json." + me + "-1.tmp"},                             // this process may be saving
		{name: ".orders.checkpoint.json." + parent + "-1.tmp"},                         // a running process
		{name: "orders.checkpoint.json", aged: true},                                   // the checkpoint itself
		{name: "notes.txt", aged: true},                                                // foreign files, however old
		{name: ".orders.checkpoint.json.tmp", aged: true},                              // no random part
		{name: ".orders.checkpoint.json.12ab.tmp", aged: true},                         // not a number
		{name: ".orders.checkpoint.json.1-2-3.tmp", aged: true},                        // not our form
		{name: "orders.checkpoint.json.123.tmp", aged: true},                           // no leading dot
		{name: "..orders.checkpoint.json.123.tmp", aged: true},                         // not a stream name
		{name: ".bad name.checkpoint.json.123.tmp", aged: true},                        // not a stream name
		{name: ".orders.checkpoint.json.123.tmp.bak", aged: true},                      // another suffix
		{name: ".orders.checkpoint.json.124.tmp", aged: true, dir: true},               // a directory
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		var err error
		if f.dir {
			err = os.Mkdir(path, 0o700)
		} else {
			err = os.WriteFile(path, nil, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.aged {
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if runtime.GOOS != "windows" {
		// A link named as a crashed writer's file: not a regular file.
		link := ".orders.checkpoint.json." + dead + "-5.tmp"
		if err := os.Symlink(filepath.Join(dir, "notes.txt"), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
		files = append(files, files[len(files)-1])
		files[len(files)-1].name, files[len(files)-1].dir = link, false
	}
	if _, err := stream.NewFileStore(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	for _, f := range files {
		if got := slices.Contains(left, f.name); got == f.remove {
			t.Errorf("%s: left = %v, want %v", f.name, got, !f.remove)
		}
	}
}
