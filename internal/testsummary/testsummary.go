// Package testsummary lets a test report a summary line, such as the spec
// runner's "spec: N passed, M failed, K skipped", that is not lost when go
// test hides the output of passing packages (package-list mode without -v).
//
// Print writes the line to standard output and appends it to the file
// named by the CHANGESTREAM_TEST_SUMMARY environment variable, when set;
// .ci/run sets it and prints the file after the tests.
package testsummary

import (
	"fmt"
	"os"
	"strings"
)

// EnvVar names the file that collects summary lines.
const EnvVar = "CHANGESTREAM_TEST_SUMMARY"

// Print reports one summary line.
func Print(line string) {
	line = strings.TrimRight(line, "\n") + "\n"
	fmt.Print(line)
	path := os.Getenv(EnvVar)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
	}
}
