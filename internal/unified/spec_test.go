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
	spec := filepath.Join(dir, "..", "shared", "conformance", "spec", "unified")
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
