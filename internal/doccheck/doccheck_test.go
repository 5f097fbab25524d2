package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the module root, relative to this package.
const root = "../.."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exampleCode returns the code of the function named fn in a test file,
// from the line that starts with from to the // Output: comment, with one
// level of indentation removed.
func exampleCode(t *testing.T, src, fn, from string) string {
	t.Helper()
	_, body, ok := strings.Cut(src, "\nfunc "+fn+"() {\n")
	if !ok {
		t.Fatalf("no func %s", fn)
	}
	body, _, ok = strings.Cut(body, "\t// Output:")
	if !ok {
		t.Fatalf("%s has no // Output:", fn)
	}
	i := strings.Index(body, "\t"+from)
	if i < 0 {
		t.Fatalf("%s has no line starting %q", fn, from)
	}
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(body[i:], "\n"), "\n") {
		out = append(out, strings.TrimPrefix(l, "\t"))
	}
	return strings.Join(out, "\n") + "\n"
}

// TestReadmeExample: the README's example is ExampleStream_All's code.
func TestReadmeExample(t *testing.T) {
	code := exampleCode(t, read(t, "stream/example_test.go"), "ExampleStream_All", "orders :=")
	readme := read(t, "README.md")
	if !strings.Contains(readme, "```go\n"+code+"```\n") {
		t.Errorf("README.md does not show ExampleStream_All's code as a go block:\n%s", code)
	}
	_, out, _ := strings.Cut(read(t, "stream/example_test.go"), "func ExampleStream_All() {")
	out, _, _ = strings.Cut(out, "\n}\n")
	_, out, _ = strings.Cut(out, "// Output:\n")
	want := strings.ReplaceAll(out, "\t// ", "") + "\n"
	if !strings.Contains(readme, "```\n"+want+"```") {
		t.Errorf("README.md does not show the example's output:\n%s", want)
	}
}

// TestGuideProcessExample: the guide's cache-invalidation example is
// ExampleProcess's code, with its output.
func TestGuideProcessExample(t *testing.T) {
	src := read(t, "stream/example_process_test.go")
	code := exampleCode(t, src, "ExampleProcess", "s, err := stream.Watch")
	guide := read(t, "docs/guide.md")
	if !strings.Contains(guide, "```go\n"+code+"```\n") {
		t.Errorf("docs/guide.md does not show ExampleProcess's code as a go block:\n%s", code)
	}
	_, out, _ := strings.Cut(src, "func ExampleProcess() {")
	out, _, _ = strings.Cut(out, "\n}\n")
	_, out, _ = strings.Cut(out, "// Output:\n")
	want := strings.ReplaceAll(out, "\t// ", "") + "\n"
	if !strings.Contains(guide, "```\n"+want+"```") {
		t.Errorf("docs/guide.md does not show ExampleProcess's output:\n%s", want)
	}
}

// TestReadmeCommands: the README's test command is the one .ci/run runs
// (which adds -json and pipes it into testreport), and its demo command is
// go run ./cmd/demo.
func TestReadmeCommands(t *testing.T) {
	ci := read(t, ".ci/run")
	m := regexp.MustCompile(`(?m)^# The README's test command.*\n(go test [^|\n]*?)(?: \|.*)?$`).FindStringSubmatch(ci)
	if m == nil {
		t.Fatal(".ci/run has no go test line after \"# The README's test command\"")
	}
	cmd := strings.Replace(m[1], " -json", "", 1)
	block := "```\ngo run ./cmd/demo\n" + cmd + "\n```\n"
	if !strings.Contains(read(t, "README.md"), block) {
		t.Errorf("README.md lacks the two commands:\n%s", block)
	}
}

// landing are files other branches add; links to them are not checked.
var landing = map[string]bool{"docs/performance.md": true}

// TestLinks: every relative link of README.md and docs/*.md leads to a file.
func TestLinks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	code := regexp.MustCompile("(?s)```.*?```|`[^`\n]*`")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Code is not a link: Go's f[T](x) looks like one.
		text := code.ReplaceAllString(string(b), "")
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(filepath.Dir(f), target)
			rel, _ := filepath.Rel(root, path)
			if landing[filepath.ToSlash(rel)] {
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
}
