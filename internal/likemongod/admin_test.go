package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The commands test harnesses send at setup answer as on mongod.
func TestHarnessCommands(t *testing.T) {
	f := newFixture(t)
	t.Run("killAllSessions", func(t *testing.T) {
		if _, err := f.admin(bson.D{{Key: "killAllSessions", Value: bson.A{}}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("serverStatus", func(t *testing.T) {
		r, err := f.admin(bson.D{{Key: "serverStatus", Value: 1}})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"host", "version", "process", "pid", "uptime", "localTime"} {
			if _, err := r.LookupErr(k); err != nil {
				t.Errorf("serverStatus lacks %s: %s", k, r)
			}
		}
	})
	t.Run("getParameter star", func(t *testing.T) {
		r, err := f.admin(bson.D{{Key: "getParameter", Value: "*"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.LookupErr("featureCompatibilityVersion"); err != nil {
			t.Errorf("getParameter '*' lacks featureCompatibilityVersion: %s", r)
		}
	})
	t.Run("replSetGetStatus", func(t *testing.T) {
		r, err := f.admin(bson.D{{Key: "replSetGetStatus", Value: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := r.Lookup("myState").AsInt64OK(); s != 1 {
			t.Errorf("myState %v, want 1 (PRIMARY): %s", r.Lookup("myState"), r)
		}
		members, ok := r.Lookup("members").ArrayOK()
		if !ok {
			t.Fatalf("no members: %s", r)
		}
		vals, _ := members.Values()
		if len(vals) != 1 || vals[0].Document().Lookup("stateStr").StringValue() != "PRIMARY" {
			t.Errorf("members %s, want one PRIMARY", members)
		}
	})
	t.Run("listCommands", func(t *testing.T) {
		r, err := f.admin(bson.D{{Key: "listCommands", Value: 1}})
		if err != nil {
			t.Fatal(err)
		}
		cmds, ok := r.Lookup("commands").DocumentOK()
		if !ok {
			t.Fatalf("no commands: %s", r)
		}
		for _, name := range []string{"find", "insert", "aggregate", "getMore", "hello"} {
			if _, err := cmds.LookupErr(name); err != nil {
				t.Errorf("listCommands lacks %s", name)
			}
		}
	})
	t.Run("replSetStepDown", func(t *testing.T) {
		// One node has no electable secondary: ExceededTimeLimit (262).
		_, err := f.admin(bson.D{{Key: "replSetStepDown", Value: 60}, {Key: "secondaryCatchUpPeriodSecs", Value: 0}})
		wantCode(t, err, 262, "replSetStepDown on one node")
	})
	t.Run("replSetFreeze", func(t *testing.T) {
		// A primary cannot freeze: NotSecondary (95).
		_, err := f.admin(bson.D{{Key: "replSetFreeze", Value: 10}})
		wantCode(t, err, 95, "replSetFreeze on the primary")
	})
}

// create of an existing collection succeeds with the same options and
// fails with NamespaceExists (48) with others.
func TestCreateExisting(t *testing.T) {
	f := newFixture(t)
	if err := f.db.CreateCollection(f.ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateCollection(f.ctx, "c"); err != nil {
		t.Fatalf("create again with the same options: %v", err)
	}
	err := f.db.CreateCollection(f.ctx, "c", options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}}))
	wantCode(t, err, 48, "create again with other options")
}

// listDatabases applies its filter.
func TestListDatabasesFilter(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	other := f.client.Database(f.db.Name() + "_other")
	t.Cleanup(func() { _ = other.Drop(f.ctx) })
	if _, err := other.Collection("c").InsertOne(f.ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	names, err := f.client.ListDatabaseNames(f.ctx, bson.D{{Key: "name", Value: f.db.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != f.db.Name() {
		t.Fatalf("listDatabases filter {name: %s} = %v", f.db.Name(), names)
	}
}
