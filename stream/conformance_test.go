package stream_test

import (
	"os"
	"path/filepath"
	"testing"
)

// conformanceDir returns ../shared/conformance/<sub> relative to the module
// root, skipping the test when it is absent (failing it under CI=true).
func conformanceDir(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "conformance", sub)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("conformance data missing at %s: %v", dir, err)
		}
		t.Skipf("conformance data missing at %s; set up ../shared/conformance beside the module to run this test", dir)
	}
	return dir
}
