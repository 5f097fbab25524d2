package unified_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-changestream/changestream/internal/testsummary"
	"github.com/go-changestream/changestream/internal/unified"
	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// specDir finds ../shared/conformance/spec/unified relative to the module
// root.
func specDir(t *testing.T) string {
	t.Helper()
	return conformanceDir(t, "spec", "unified")
}

// conformanceDir finds ../shared/conformance/<elem...> relative to the
// module root; absent, the test skips (fails under CI=true).
func conformanceDir(t *testing.T, elem ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found")
		}
		dir = parent
	}
	spec := filepath.Join(append([]string{dir, "..", "shared", "conformance"}, elem...)...)
	if _, err := os.Stat(spec); err != nil {
		msg := fmt.Sprintf("conformance data not found at %s: set up ../shared/conformance next to the module root to run the spec tests", spec)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return spec
}

// TestSpec runs the change-stream unified spec tests through the Go driver
// against mongotest, one fresh server per test, as a single-node replica
// set running MongoDB 8.2.
func TestSpec(t *testing.T) {
	dir := specDir(t)
	r := &unified.Runner{
		Target: unified.Target{Version: serverVersion(t), Topology: "replicaset"},
		NewServer: func(t *testing.T) string {
			return mongotest.New(t, nil).URI()
		},
	}
	r.RunDir(t, dir)
	testsummary.Print(r.Summary())
	for _, f := range r.Failures() {
		t.Logf("failed: %s", f)
	}
}

// serverVersion asks a mongotest server for the version it reports, which
// the runOnRequirements of the spec tests are checked against.
func serverVersion(t *testing.T) string {
	t.Helper()
	srv := mongotest.New(t, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	var info struct {
		Version string `bson:"version"`
	}
	if err := client.Database("admin").RunCommand(context.Background(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info.Version
}

// specsDirs are the directories of ../shared/conformance/specs the
// runner runs, each with the number of its tests that passed when the
// floor was last raised. Not every test that applies to a single-node
// replica set passes yet; TestSpecs fails when a directory passes fewer
// tests than its floor (a regression) and, for the directories marked
// finished, on any failure. Raise a floor when mongotest or the runner
// gets better; mark a directory finished when it has no failures left.
var specsDirs = []struct {
	name     string
	floor    int
	finished bool
}{
	{name: "crud", floor: 308},
	{name: "transactions", floor: 162},
	{name: "transactions-convenient-api", floor: 27, finished: true},
	{name: "retryable-writes", floor: 117},
	{name: "retryable-reads", floor: 277, finished: true},
	{name: "sessions", floor: 33, finished: true},
	{name: "collection-management", floor: 3},
	{name: "index-management", floor: 18, finished: true},
	{name: "run-command", floor: 15},
}

// TestSpecs runs the unified spec tests of ../shared/conformance/specs
// (CRUD, transactions, retryable reads and writes, sessions, DDL and
// runCommand) through the Go driver against mongotest, as a single-node
// replica set running MongoDB 8.2. The tests of one file share a server;
// the files run in parallel. It prints one line per directory and a
// total line, `specs: N passed, M failed, K skipped`.
func TestSpecs(t *testing.T) {
	root := conformanceDir(t, "specs")
	r := &unified.Runner{
		Target:        unified.Target{Version: serverVersion(t), Topology: "replicaset"},
		NewServer:     func(t *testing.T) string { return mongotest.New(t, nil).URI() },
		ServerPerFile: true,
		ParallelFiles: true,
		CountFailures: true,
	}
	t.Run("specs", func(t *testing.T) {
		for _, d := range specsDirs {
			t.Run(d.name, func(t *testing.T) { r.RunDir(t, filepath.Join(root, d.name)) })
		}
	})
	for _, d := range specsDirs {
		testsummary.Print(fmt.Sprintf("specs/%s: %s", d.name, r.Counts(d.name)))
	}
	testsummary.Print("specs: " + r.Total().String())
	for _, f := range r.Failures() {
		t.Logf("failed: %s", f)
	}
	for _, d := range specsDirs {
		c := r.Counts(d.name)
		if c.Passed < d.floor {
			t.Errorf("specs/%s: %d passed, below the floor of %d", d.name, c.Passed, d.floor)
		}
		if d.finished && c.Failed > 0 {
			t.Errorf("specs/%s is marked finished but %d tests failed", d.name, c.Failed)
		}
	}
}
