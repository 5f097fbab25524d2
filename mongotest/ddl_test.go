package mongotest_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// nextRaw returns the next event of cs as raw BSON.
func nextRaw(t *testing.T, f *fixture, cs *mongo.ChangeStream) bson.Raw {
	t.Helper()
	if !cs.Next(f.ctx) {
		t.Fatalf("no event: %v", cs.Err())
	}
	return append(bson.Raw(nil), cs.Current...)
}

func rename(f *fixture, from, to string, dropTarget bool) error {
	cmd := bson.D{{Key: "renameCollection", Value: "test." + from}, {Key: "to", Value: "test." + to}}
	if dropTarget {
		cmd = append(cmd, bson.E{Key: "dropTarget", Value: true})
	}
	return f.client.Database("admin").RunCommand(f.ctx, cmd).Err()
}

func TestRenameCollection(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}})
	if _, err := f.db.Collection("other").InsertOne(f.ctx, bson.D{{Key: "_id", Value: "o"}}); err != nil {
		t.Fatal(err)
	}
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			err  error
			code int
		}{
			{"missing source", rename(f, "nope", "x", false), 26},
			{"existing target", rename(f, "c", "other", false), 48},
			{"not on admin", f.db.RunCommand(f.ctx, bson.D{{Key: "renameCollection", Value: "test.c"}, {Key: "to", Value: "test.x"}}).Err(), 13},
		} {
			if got := errCode(tc.err); got != tc.code {
				t.Errorf("%s: error %v: code %d, want %d", tc.name, tc.err, got, tc.code)
			}
		}
	})
	cs := f.watch(t, options.ChangeStream().SetShowExpandedEvents(true))
	target, err := f.db.Collection("other").Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close(f.ctx)
	if err := rename(f, "c", "other", true); err != nil {
		t.Fatal(err)
	}
	ev := nextRaw(t, f, cs)
	var got struct {
		OperationType string `bson:"operationType"`
		NS            bson.M `bson:"ns"`
		To            bson.M `bson:"to"`
		OpDesc        bson.M `bson:"operationDescription"`
	}
	if err := bson.Unmarshal(ev, &got); err != nil {
		t.Fatal(err)
	}
	if got.OperationType != "rename" || got.To["coll"] != "other" || got.NS["coll"] != "c" {
		t.Errorf("event = %v", ev)
	}
	if _, ok := got.OpDesc["dropTarget"].(bson.Binary); !ok || ev.Lookup("operationDescription", "to", "coll").StringValue() != "other" {
		t.Errorf("operationDescription = %v", got.OpDesc)
	}
	if op := nextRaw(t, f, cs).Lookup("operationType").StringValue(); op != "invalidate" {
		t.Errorf("after rename: %q, want invalidate", op)
	}
	// The stream on the dropped target sees the rename onto it.
	if op := nextRaw(t, f, target).Lookup("operationType").StringValue(); op != "rename" {
		t.Errorf("target stream: %q, want rename", op)
	}
	var docs []bson.D
	cur, err := f.db.Collection("other").Find(f.ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(f.ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bson.D{{{Key: "_id", Value: int32(1)}}}, docs); diff != "" {
		t.Errorf("renamed collection (-want +got):\n%s", diff)
	}
}

func TestIndexes(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}})
	cs := f.watch(t, options.ChangeStream().SetShowExpandedEvents(true))
	iv := f.coll.Indexes()
	name, err := iv.CreateOne(f.ctx, mongo.IndexModel{Keys: bson.D{{Key: "x", Value: 1}}, Options: options.Index().SetUnique(true)})
	if err != nil || name != "x_1" {
		t.Fatalf("CreateOne = %q, %v", name, err)
	}
	if _, err := iv.CreateOne(f.ctx, mongo.IndexModel{Keys: bson.D{{Key: "x", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Errorf("creating an equal index again: %v", err)
	}
	for _, tc := range []struct {
		name  string
		model mongo.IndexModel
		code  int
	}{
		{"same name, other key", mongo.IndexModel{Keys: bson.D{{Key: "y", Value: 1}}, Options: options.Index().SetName("x_1")}, 86},
		{"same key, other name", mongo.IndexModel{Keys: bson.D{{Key: "x", Value: 1}}, Options: options.Index().SetName("other").SetUnique(true)}, 85},
		{"same name and key, other options", mongo.IndexModel{Keys: bson.D{{Key: "x", Value: 1}}}, 85},
	} {
		_, err := iv.CreateOne(f.ctx, tc.model)
		if got := errCode(err); got != tc.code {
			t.Errorf("%s: error %v: code %d, want %d", tc.name, err, got, tc.code)
		}
	}
	if _, err := iv.CreateOne(f.ctx, mongo.IndexModel{Keys: bson.D{{Key: "y", Value: -1}}}); err != nil {
		t.Fatal(err)
	}
	specs, err := iv.ListSpecifications(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"_id_", "x_1", "y_-1"}, names); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if err := iv.DropOne(f.ctx, "nope"); errCode(err) != 27 {
		t.Errorf("dropping a missing index: %v, want code 27", err)
	}
	if err := iv.DropOne(f.ctx, "_id_"); errCode(err) != 72 {
		t.Errorf("dropping _id_: %v, want code 72", err)
	}
	if err := iv.DropWithKey(f.ctx, bson.D{{Key: "y", Value: -1}}); err != nil {
		t.Fatal(err)
	}
	if err := iv.DropAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ op, index string }{{"createIndexes", "x_1"}, {"createIndexes", "y_-1"}, {"dropIndexes", "y_-1"}, {"dropIndexes", "x_1"}} {
		ev := nextRaw(t, f, cs)
		op := ev.Lookup("operationType").StringValue()
		ix := ev.Lookup("operationDescription", "indexes", "0", "name")
		if op != want.op || ix.StringValue() != want.index {
			t.Errorf("event %s on %v, want %s on %s", op, ix, want.op, want.index)
		}
	}
}

func TestCollModAndListings(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: 1}})
	if _, err := f.coll.Indexes().CreateOne(f.ctx, mongo.IndexModel{Keys: bson.D{{Key: "v", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	cs := f.watch(t, options.ChangeStream().SetShowExpandedEvents(true).SetFullDocumentBeforeChange(options.WhenAvailable))
	var reply bson.M
	err := f.db.RunCommand(f.ctx, bson.D{
		{Key: "collMod", Value: "c"},
		{Key: "changeStreamPreAndPostImages", Value: bson.D{{Key: "enabled", Value: true}}},
		{Key: "index", Value: bson.D{{Key: "name", Value: "v_1"}, {Key: "hidden", Value: true}}},
	}).Decode(&reply)
	if err != nil {
		t.Fatal(err)
	}
	if reply["hidden_old"] != false || reply["hidden_new"] != true {
		t.Errorf("collMod reply = %v", reply)
	}
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	mod := nextRaw(t, f, cs)
	if op := mod.Lookup("operationType").StringValue(); op != "modify" {
		t.Fatalf("operationType %q, want modify", op)
	}
	if _, err := mod.LookupErr("stateBeforeChange", "collectionOptions", "uuid"); err != nil {
		t.Errorf("modify event without stateBeforeChange.collectionOptions.uuid: %v", mod)
	}
	if h := mod.Lookup("operationDescription", "index", "hidden"); h.Type != bson.TypeBoolean || !h.Boolean() {
		t.Errorf("modify operationDescription = %v", mod.Lookup("operationDescription"))
	}
	upd := nextRaw(t, f, cs)
	if before := upd.Lookup("fullDocumentBeforeChange", "v"); before.Type == 0 {
		t.Errorf("update after enabling images has no pre-image: %v", upd)
	}
	for _, tc := range []struct {
		name string
		cmd  bson.D
		code int
	}{
		{"missing collection", bson.D{{Key: "collMod", Value: "nope"}}, 26},
		{"missing index", bson.D{{Key: "collMod", Value: "c"}, {Key: "index", Value: bson.D{{Key: "name", Value: "zz"}, {Key: "hidden", Value: true}}}}, 27},
		{"unsupported option", bson.D{{Key: "collMod", Value: "c"}, {Key: "validator", Value: bson.D{}}}, 238},
	} {
		err := f.db.RunCommand(f.ctx, tc.cmd).Err()
		if got := errCode(err); got != tc.code {
			t.Errorf("%s: error %v: code %d, want %d", tc.name, err, got, tc.code)
		}
	}

	if err := f.db.CreateCollection(f.ctx, "d"); err != nil {
		t.Fatal(err)
	}
	names, err := f.db.ListCollectionNames(f.ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: bson.A{"d", "zz"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"d"}, names); diff != "" {
		t.Errorf("ListCollectionNames (-want +got):\n%s", diff)
	}
	dbs, err := f.client.ListDatabaseNames(f.ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"test"}, dbs); diff != "" {
		t.Errorf("ListDatabaseNames (-want +got):\n%s", diff)
	}
}

func TestViews(t *testing.T) {
	f := newFixture(t)
	cs, err := f.db.Watch(f.ctx, mongo.Pipeline{}, options.ChangeStream().SetShowExpandedEvents(true))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(f.ctx)
	if err := f.db.CreateView(f.ctx, "v", "c", mongo.Pipeline{}); err != nil {
		t.Fatal(err)
	}
	ev := nextRaw(t, f, cs)
	if op, ns := ev.Lookup("operationType").StringValue(), ev.Lookup("nsType").StringValue(); op != "create" || ns != "view" {
		t.Errorf("create view event: %s nsType %q", op, ns)
	}
	if on := ev.Lookup("operationDescription", "viewOn").StringValue(); on != "c" {
		t.Errorf("operationDescription.viewOn = %q, want c", on)
	}
	specs, err := f.db.ListCollectionSpecifications(f.ctx, bson.D{{Key: "name", Value: "v"}})
	if err != nil || len(specs) != 1 || specs[0].Type != "view" {
		t.Fatalf("ListCollectionSpecifications = %+v, %v", specs, err)
	}
	_, err = f.db.Collection("v").InsertOne(f.ctx, bson.D{})
	if got := errCode(err); got != 166 {
		t.Errorf("insert into a view: %v, code %d, want 166", err, got)
	}
	if err := f.db.Collection("v").Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
}
