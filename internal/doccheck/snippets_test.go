package doccheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// raceEnabled is set when this test runs with -race.
var raceEnabled bool

// TestTestingDocSnippetsRun: every Go snippet of docs/testing.md is a whole
// file that builds and passes on its own. Each becomes the only file of a
// package of a scratch module that requires this one through a replace
// directive, with the versions of this module's go.mod and go.sum; go test
// then builds, vets and runs them all in one command.
func TestTestingDocSnippetsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the snippets of docs/testing.md; not with -short")
	}
	doc := read(t, "docs/testing.md")
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("docs/testing.md has %d go blocks", len(blocks))
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := read(t, "go.mod")
	modLine := regexp.MustCompile(`(?m)^module (\S+)$`)
	m := modLine.FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no module line")
	}
	self := m[1]
	gomod = modLine.ReplaceAllString(gomod, "module doccheck.example/snippets")
	gomod += fmt.Sprintf("\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n", self, self, abs)
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", gomod)
	write("go.sum", read(t, "go.sum"))
	for i, b := range blocks {
		code := b[1]
		first, _, _ := strings.Cut(code, "\n")
		if !strings.HasPrefix(first, "package ") {
			t.Errorf("snippet %d of docs/testing.md is not a whole file: it starts %q, not with a package clause", i+1, first)
			continue
		}
		name := "snippet_test.go"
		if first == "package main" && !strings.Contains(code, "testing.T") {
			name = "main.go"
		}
		write(fmt.Sprintf("snippet%d/%s", i+1, name), code)
	}
	if t.Failed() {
		return
	}
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race") // reuses what the race build of this test compiled
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = dir
	// Everything the snippets need is in this module's go.sum and the
	// module cache: no network.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("the snippets of docs/testing.md (snippetN is the Nth go block) do not pass: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "ok  \tdoccheck.example/snippets/snippet"); n != len(blocks) {
		t.Errorf("%d of %d snippets passed:\n%s", n, len(blocks), out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
