package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// scratch is a module with a package that passes (one test skipped, one
// subtest skipped), one that fails, and one that does not build.
var scratch = map[string]string{
	"go.mod": "module scratch\n\ngo 1.25\n",
	"pass/pass_test.go": `package pass

import "testing"

func TestOK(t *testing.T) { t.Log("a passing test's log, which go test hides") }

func TestNeedsNode(t *testing.T) { t.Skip("needs node") }

func TestTable(t *testing.T) {
	t.Run("fast", func(t *testing.T) {})
	t.Run("slow", func(t *testing.T) { t.Skipf("skipped under %s", "-short") })
}
`,
	"fail/fail_test.go": `package fail

import "testing"

func TestOK(t *testing.T) { t.Log("hidden too") }

func TestBroken(t *testing.T) {
	t.Log("what it saw")
	t.Error("want 2, got 3")
}
`,
	"nobuild/nobuild_test.go": `package nobuild

import "testing"

func TestX(t *testing.T) { undefined() }
`,
}

var timing = regexp.MustCompile(`\d+\.\d+s`)

// lines returns the lines of out with timings blanked, sorted: packages
// run in parallel, so their order varies.
func lines(out string) []string {
	var ls []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		ls = append(ls, timing.ReplaceAllString(l, "T"))
	}
	slices.Sort(ls)
	return ls
}

// TestReportIsWhatGoTestPrints: over a real go test -json run, the report
// has the lines go test prints without -json, and then the skipped tests.
func TestReportIsWhatGoTestPrints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a scratch module; not with -short")
	}
	dir := t.TempDir()
	for name, src := range scratch {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goTest := func(args ...string) string {
		cmd := exec.Command("go", append([]string{"test", "-count=1"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("go test %v passed; the scratch module has a failing test:\n%s", args, out)
		}
		return string(out)
	}
	plain := goTest("./...")
	jsonOut := goTest("-json", "./...")

	var got bytes.Buffer
	code, err := report(strings.NewReader(jsonOut), &got)
	if err != nil || code != 1 {
		t.Fatalf("report = %d, %v; want 1 (a test failed)", code, err)
	}
	body, list, ok := strings.Cut(got.String(), "--- skipped tests: ")
	if !ok {
		t.Fatalf("no list of skipped tests:\n%s", got.String())
	}
	if g, w := lines(body), lines(plain); !slices.Equal(g, w) {
		t.Errorf("report:\n%s\nwant the lines of go test without -json:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	wantList := `2
scratch/pass TestNeedsNode: pass_test.go:7: needs node
scratch/pass TestTable/slow: pass_test.go:11: skipped under -short
`
	if list != wantList {
		t.Errorf("skipped tests:\n%s\nwant:\n%s", list, wantList)
	}
}

func TestReportRefusesOtherInput(t *testing.T) {
	var out bytes.Buffer
	code, err := report(strings.NewReader("{\"Action\": 3}\n"), &out)
	if code != 2 || err == nil {
		t.Errorf("report of a bad event = %d, %v; want 2 and an error", code, err)
	}
}
