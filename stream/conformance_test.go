package stream_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
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

// The manual's example event of every operation type decodes into Event
// without losing a field.
func TestManualEventsDecodeWithoutLoss(t *testing.T) {
	dir := conformanceDir(t, "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		if name == "sources" {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var doc bson.D
			if err := bson.UnmarshalExtJSON(js, false, &doc); err != nil {
				t.Fatal(err)
			}
			b, err := bson.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			raw := bson.Raw(b)
			ev, err := stream.DecodeEvent[bson.Raw](raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if op, _ := raw.Lookup("operationType").StringValueOK(); string(ev.OperationType) != op {
				t.Errorf("OperationType = %q, want %q", ev.OperationType, op)
			}
			checkNoFieldLost(t, raw, ev)
		})
	}
	if n == 0 {
		t.Fatalf("no event documents in %s", dir)
	}
}
