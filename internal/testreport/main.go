// Command testreport reads the output of go test -json and prints what go
// test prints without -json (each package's ok line, and the whole output
// of what failed), then every skipped test by name with the reason it gave.
// .ci/run pipes the README's test command through it:
//
//	go test -race -count=1 -json ./... | go run ./internal/testreport
//
// It exits 1 when a test or a build failed, 2 when its input is not go
// test -json output.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// testEvent is one line of go test -json (cmd/test2json).
type testEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // of build-output events
	FailedBuild string
}

// testRun is what was printed for one test.
type testRun struct {
	output []string
	action string // the last of pass, fail, skip
}

// pkgRun gathers one package's events until its end.
type pkgRun struct {
	tests  map[string]*testRun
	order  []string
	output []string // the package's own lines (Test == "")
}

// skip is a skipped test, for the list at the end.
type skip struct {
	pkg, test, reason string
}

func main() {
	code, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
	}
	os.Exit(code)
}

// report reads events from r and writes the report to w. It returns the
// exit status.
func report(r io.Reader, w io.Writer) (int, error) {
	pkgs := map[string]*pkgRun{}
	var skips []skip
	failed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		n++
		if len(line) == 0 || line[0] != '{' {
			// go test prints some errors (a bad package path) as text.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		var ev testEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return 2, fmt.Errorf("line %d is not go test -json output: %v", n, err)
		}
		if ev.Action == "build-output" {
			fmt.Fprint(w, ev.Output)
			continue
		}
		if ev.Action == "build-fail" {
			failed = true
			continue
		}
		p := pkgs[ev.Package]
		if p == nil {
			p = &pkgRun{tests: map[string]*testRun{}}
			pkgs[ev.Package] = p
		}
		if ev.Test == "" {
			switch ev.Action {
			case "output":
				p.output = append(p.output, ev.Output)
			case "pass", "skip":
				printPackage(w, p, false)
				delete(pkgs, ev.Package)
			case "fail":
				failed = true
				printPackage(w, p, true)
				delete(pkgs, ev.Package)
			}
			continue
		}
		t := p.tests[ev.Test]
		if t == nil {
			t = &testRun{}
			p.tests[ev.Test] = t
			p.order = append(p.order, ev.Test)
		}
		switch ev.Action {
		case "output":
			t.output = append(t.output, ev.Output)
		case "pass", "fail", "skip":
			t.action = ev.Action
			if ev.Action == "skip" {
				skips = append(skips, skip{pkg: ev.Package, test: ev.Test, reason: skipReason(t.output)})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 2, err
	}
	for _, p := range pkgs { // a package whose end never came: a crash
		failed = true
		printPackage(w, p, true)
	}
	if failed {
		fmt.Fprintln(w, "FAIL") // as the go command ends a run in which anything failed
	}
	fmt.Fprintf(w, "--- skipped tests: %d\n", len(skips))
	for _, s := range skips {
		fmt.Fprintf(w, "%s %s: %s\n", s.pkg, s.test, s.reason)
	}
	if failed {
		return 1, nil
	}
	return 0, nil
}

// printPackage writes what go test without -json writes for a package: its
// ok (or no test files) line when it passed; when it failed, the output of
// every test that failed and the package's own lines.
func printPackage(w io.Writer, p *pkgRun, failed bool) {
	if failed {
		for _, name := range p.order {
			if t := p.tests[name]; t.action == "fail" || t.action == "" {
				for _, l := range t.output {
					if !isProgress(l) {
						fmt.Fprint(w, l)
					}
				}
			}
		}
	}
	for _, l := range p.output {
		if failed || strings.HasPrefix(l, "ok  ") || strings.HasPrefix(l, "?   ") || strings.HasPrefix(l, "FAIL") {
			if l != "PASS\n" {
				fmt.Fprint(w, l)
			}
		}
	}
}

// isProgress reports the lines -v adds that go test without it does not
// print: === RUN, === PAUSE, === CONT, === NAME.
func isProgress(l string) bool {
	return strings.HasPrefix(strings.TrimLeft(l, " "), "=== ")
}

// skipReason is what a skipped test printed, on one line.
func skipReason(output []string) string {
	var parts []string
	for _, l := range output {
		t := strings.TrimSpace(l)
		if t == "" || isProgress(l) || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}
