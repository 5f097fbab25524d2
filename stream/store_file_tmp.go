package stream

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// staleTempAge is how old a temporary file of a Save must be before a
// FileStore that opens removes it when it cannot tell whether its writer
// still runs. A Save keeps its file for one write, sync and rename.
const staleTempAge = 10 * time.Minute

// tempPattern is the os.CreateTemp pattern of the temporary file of a Save
// of stream name: it carries the writer's process id, so that a store that
// opens can tell a crashed writer's file from one being written.
func tempPattern(name string) string {
	return "." + name + checkpointSuffix + "." + strconv.Itoa(os.Getpid()) + "-*.tmp"
}

// removeStaleTemps removes, best effort, the temporary files that Saves
// of crashed processes left in dir: regular files named as tempPattern
// names them (or as Saves of earlier versions did, without the process
// id), whose writer is no longer running or, when that cannot be told,
// that are older than staleTempAge. Nothing else is touched.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, ok := parseTempName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		stale := pid > 0 && pid != os.Getpid() && processGone(pid)
		if !stale {
			fi, err := os.Lstat(path)
			stale = err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > staleTempAge
		}
		if stale {
			_ = os.Remove(path)
		}
	}
}

// parseTempName reports whether file is the name of a Save's temporary
// file, ".<stream>.checkpoint.json.<pid>-<random>.tmp" or, from earlier
// versions, ".<stream>.checkpoint.json.<random>.tmp", where <stream> is a
// valid FileStore stream name and <pid> and <random> are decimal numbers.
// pid is 0 for the name without a process id.
func parseTempName(file string) (pid int, ok bool) {
	rest, ok := strings.CutPrefix(file, ".")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return 0, false
	}
	i := strings.LastIndex(rest, checkpointSuffix+".")
	if i <= 0 {
		return 0, false
	}
	name, tail := rest[:i], rest[i+len(checkpointSuffix)+1:]
	if checkFileStreamName(name) != nil {
		return 0, false
	}
	p, random, hasPID := strings.Cut(tail, "-")
	if !hasPID {
		return 0, isDecimal(tail)
	}
	if !isDecimal(p) || !isDecimal(random) {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
