package mongotest_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// conformanceDir returns ../shared/conformance/<sub> relative to the module
// root. When it is absent the test skips, telling how to set it up; under
// CI=true absence fails the test.
func conformanceDir(t *testing.T, sub string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("no go.mod above %s", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, "..", "shared", "conformance", sub)
	if _, err := os.Stat(dir); err != nil {
		msg := "conformance data not found at " + dir + ": place the real change events (Extended JSON, one file per operation type) in ../shared/conformance/events next to the module root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// TestEventConformance performs, for each real change event in the
// conformance data, the operation that produces it on mongotest and checks
// that the event mongotest emits has the same field names and BSON types,
// recursively. Token, time and UUID values differ by nature.
func TestEventConformance(t *testing.T) {
	dir := conformanceDir(t, "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, file := range files {
		kind := strings.TrimSuffix(filepath.Base(file), ".json")
		if kind == "sources" {
			continue // provenance of the other files, not an event
		}
		seen++
		t.Run(kind, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ref bson.Raw
			if err := bson.UnmarshalExtJSON(data, false, &ref); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			run, ok := eventScenarios[kind]
			if !ok {
				if kind == "shardCollection" {
					t.Skip("shardCollection events exist only on sharded clusters; mongotest is a single-node replica set")
				}
				t.Fatalf("no scenario for the conformance event %q", kind)
			}
			f := newFixture(t)
			got := run(t, f, ref)
			var diffs []string
			compareShape(&diffs, "", ref, got, allowances[kind])
			for _, d := range diffs {
				t.Error(d)
			}
			if t.Failed() {
				t.Logf("reference: %s\nmongotest: %s", ref, got)
			}
		})
	}
	if seen == 0 {
		t.Fatalf("no event documents in %s", dir)
	}
}

// allowance names a path where mongotest's event legitimately differs
// from an older reference, and how.
type allowance struct {
	missing map[string]bool // reference fields a real 8.2 replica set does not send
	extra   map[string]bool // fields a real 8.2 server adds
}

var allowances = map[string]allowance{
	// The manual's insert example comes from a sharded collection: its
	// documentKey carries the shard key (userName). On a replica set the
	// documentKey is {_id} only.
	"insert": {missing: map[string]bool{"documentKey.userName": true}},
	// The manual's updateLookup example shows disambiguatedPaths, which a
	// real server sends only with showExpandedEvents (spec test
	// change-streams-disambiguatedPaths.json: "disambiguatedPaths is not
	// present when showExpandedEvents is false/unset").
	"update-updateLookup": {missing: map[string]bool{"updateDescription.disambiguatedPaths": true}},
	// Since 8.0 a create event seen with showExpandedEvents carries nsType
	// ("collection", "view" or "timeseries"); the example predates it.
	"create": {extra: map[string]bool{"nsType": true}},
}

// compareShape appends to diffs every difference in field names or BSON
// types between ref and got (documents by field name, arrays element by
// element).
func compareShape(diffs *[]string, path string, ref, got bson.Raw, allow allowance) {
	refEls, _ := ref.Elements()
	gotEls, _ := got.Elements()
	gotByKey := map[string]bson.RawValue{}
	for _, el := range gotEls {
		gotByKey[el.Key()] = el.Value()
	}
	refKeys := map[string]bool{}
	for _, el := range refEls {
		k := el.Key()
		refKeys[k] = true
		p := join(path, k)
		gv, ok := gotByKey[k]
		if !ok {
			if !allow.missing[p] {
				*diffs = append(*diffs, "missing field "+p+" ("+el.Value().Type.String()+")")
			}
			continue
		}
		compareValueShape(diffs, p, el.Value(), gv, allow)
	}
	for _, el := range gotEls {
		if p := join(path, el.Key()); !refKeys[el.Key()] && !allow.extra[p] {
			*diffs = append(*diffs, "unexpected field "+p+" ("+el.Value().Type.String()+")")
		}
	}
}

func compareValueShape(diffs *[]string, p string, rv, gv bson.RawValue, allow allowance) {
	if rv.Type != gv.Type {
		*diffs = append(*diffs, p+": type "+gv.Type.String()+", want "+rv.Type.String())
		return
	}
	switch rv.Type {
	case bson.TypeEmbeddedDocument:
		compareShape(diffs, p, rv.Document(), gv.Document(), allow)
	case bson.TypeArray:
		ra, _ := rv.Array().Values()
		ga, _ := gv.Array().Values()
		if len(ra) != len(ga) {
			*diffs = append(*diffs, p+": array of "+itoa(len(ga))+" elements, want "+itoa(len(ra)))
			return
		}
		for i := range ra {
			compareValueShape(diffs, p+"."+itoa(i), ra[i], ga[i], allow)
		}
	case bson.TypeBinary:
		rs, _ := rv.Binary()
		gs, _ := gv.Binary()
		if rs != gs {
			*diffs = append(*diffs, p+": binary subtype differs")
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func itoa(i int) string { return strconv.Itoa(i) }

// scenario performs the operation behind a reference event on f and
// returns the event mongotest emitted for it.
type scenario func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw

// nsOf returns the db and collection a reference event names.
func nsOf(ref bson.Raw) (db, coll string) {
	db, _ = ref.Lookup("ns", "db").StringValueOK()
	coll, _ = ref.Lookup("ns", "coll").StringValueOK()
	return db, coll
}

// refColl returns the collection of the reference event's namespace.
func refColl(f *fixture, ref bson.Raw) *mongo.Collection {
	db, coll := nsOf(ref)
	return f.client.Database(db).Collection(coll)
}

// watchRef opens a stream on the reference's collection (or database,
// when the reference names no collection).
func watchRef(t *testing.T, f *fixture, ref bson.Raw, opts *options.ChangeStreamOptionsBuilder) *mongo.ChangeStream {
	t.Helper()
	db, coll := nsOf(ref)
	var cs *mongo.ChangeStream
	var err error
	if coll == "" {
		cs, err = f.client.Database(db).Watch(f.ctx, mongo.Pipeline{}, opts)
	} else {
		cs, err = f.client.Database(db).Collection(coll).Watch(f.ctx, mongo.Pipeline{}, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(f.ctx) })
	return cs
}

// nextOp returns the next event of type op, skipping others.
func nextOp(t *testing.T, f *fixture, cs *mongo.ChangeStream, op string) bson.Raw {
	t.Helper()
	for cs.Next(f.ctx) {
		if cs.Current.Lookup("operationType").StringValue() == op {
			return append(bson.Raw(nil), cs.Current...)
		}
	}
	t.Fatalf("no %s event: %v", op, cs.Err())
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// updateScenario makes an update with the reference's updatedFields,
// removedFields and truncatedArrays: the fields exist with other values
// first, then one pipeline update sets, unsets and truncates them (a real
// server reports truncation for pipeline updates, which it diffs).
func updateScenario(lookup bool) scenario {
	return func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		id := ref.Lookup("documentKey", "_id")
		seed := bson.D{{Key: "_id", Value: id}}
		set := bson.D{}
		var unset bson.A
		if full, ok := ref.Lookup("fullDocument").DocumentOK(); ok {
			els, _ := full.Elements()
			for _, el := range els {
				if el.Key() != "_id" {
					seed = append(seed, bson.E{Key: el.Key(), Value: el.Value()})
				}
			}
		}
		upd, _ := ref.Lookup("updateDescription", "updatedFields").DocumentOK()
		els, _ := upd.Elements()
		for _, el := range els {
			seed = setField(seed, el.Key(), "an older value")
			set = append(set, bson.E{Key: el.Key(), Value: bson.D{{Key: "$literal", Value: el.Value()}}})
		}
		removed, _ := ref.Lookup("updateDescription", "removedFields").Array().Values()
		for _, r := range removed {
			seed = setField(seed, r.StringValue(), "to be removed")
			unset = append(unset, r.StringValue())
		}
		truncs, _ := ref.Lookup("updateDescription", "truncatedArrays").Array().Values()
		var truncFields []string
		for _, tr := range truncs {
			field := tr.Document().Lookup("field").StringValue()
			n := int(tr.Document().Lookup("newSize").AsInt64())
			long := make(bson.A, n+4)
			for i := range long {
				long[i] = int32(i)
			}
			seed = setField(seed, field, long)
			set = append(set, bson.E{Key: field, Value: bson.D{{Key: "$literal", Value: long[:n]}}})
			truncFields = append(truncFields, field)
		}
		_, err := coll.InsertOne(f.ctx, seed)
		must(t, err)
		opts := options.ChangeStream()
		if lookup {
			opts.SetFullDocument(options.UpdateLookup)
		}
		cs := watchRef(t, f, ref, opts)
		pipe := mongo.Pipeline{{{Key: "$set", Value: set}}}
		if len(unset) > 0 {
			pipe = append(pipe, bson.D{{Key: "$unset", Value: unset}})
		}
		_, err = coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: id}}, pipe)
		must(t, err)
		if lookup && len(truncFields) > 0 {
			// updateLookup returns the document as it is when the event is
			// read: drop the fields the reference's fullDocument lacks.
			uns := bson.D{}
			for _, fld := range truncFields {
				uns = append(uns, bson.E{Key: fld, Value: ""})
			}
			_, err = coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$unset", Value: uns}})
			must(t, err)
		}
		return nextOp(t, f, cs, "update")
	}
}

func setField(d bson.D, key string, v any) bson.D {
	for i := range d {
		if d[i].Key == key {
			d[i].Value = v
			return d
		}
	}
	return append(d, bson.E{Key: key, Value: v})
}

var eventScenarios = map[string]scenario{
	"insert": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		cs := watchRef(t, f, ref, options.ChangeStream())
		_, err := refColl(f, ref).InsertOne(f.ctx, ref.Lookup("fullDocument").Document())
		must(t, err)
		return nextOp(t, f, cs, "insert")
	},
	"update":              updateScenario(false),
	"update-updateLookup": updateScenario(true),
	"replace": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		id := ref.Lookup("documentKey", "_id")
		_, err := coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: id}, {Key: "old", Value: true}})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream())
		_, err = coll.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: id}}, ref.Lookup("fullDocument").Document())
		must(t, err)
		return nextOp(t, f, cs, "replace")
	},
	"delete": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		id := ref.Lookup("documentKey", "_id")
		_, err := coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: id}})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream())
		_, err = coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: id}})
		must(t, err)
		return nextOp(t, f, cs, "delete")
	},
	"drop": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		_, err := coll.InsertOne(f.ctx, bson.D{})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream())
		must(t, coll.Drop(f.ctx))
		return nextOp(t, f, cs, "drop")
	},
	"invalidate": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := f.client.Database("test").Collection("gone")
		_, err := coll.InsertOne(f.ctx, bson.D{})
		must(t, err)
		cs, err := coll.Watch(f.ctx, mongo.Pipeline{})
		must(t, err)
		defer cs.Close(f.ctx)
		must(t, coll.Drop(f.ctx))
		return nextOp(t, f, cs, "invalidate")
	},
	"rename": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		db, from := nsOf(ref)
		toDB := ref.Lookup("to", "db").StringValue()
		to := ref.Lookup("to", "coll").StringValue()
		_, err := refColl(f, ref).InsertOne(f.ctx, bson.D{})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream())
		must(t, f.client.Database("admin").RunCommand(f.ctx, bson.D{{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: toDB + "." + to}}).Err())
		return nextOp(t, f, cs, "rename")
	},
	"dropDatabase": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		db, _ := nsOf(ref)
		_, err := f.client.Database(db).Collection("c").InsertOne(f.ctx, bson.D{})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream())
		must(t, f.client.Database(db).Drop(f.ctx))
		return nextOp(t, f, cs, "dropDatabase")
	},
	"create": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		db, coll := nsOf(ref)
		cs, err := f.client.Database(db).Watch(f.ctx, mongo.Pipeline{}, options.ChangeStream().SetShowExpandedEvents(true))
		must(t, err)
		defer cs.Close(f.ctx)
		must(t, f.client.Database(db).CreateCollection(f.ctx, coll))
		return nextOp(t, f, cs, "create")
	},
	"createIndexes": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		must(t, f.client.Database(coll.Database().Name()).CreateCollection(f.ctx, coll.Name()))
		cs := watchRef(t, f, ref, options.ChangeStream().SetShowExpandedEvents(true))
		spec := ref.Lookup("operationDescription", "indexes", "0").Document()
		_, err := coll.Indexes().CreateOne(f.ctx, mongo.IndexModel{Keys: spec.Lookup("key").Document(), Options: options.Index().SetName(spec.Lookup("name").StringValue())})
		must(t, err)
		return nextOp(t, f, cs, "createIndexes")
	},
	"dropIndexes": func(t *testing.T, f *fixture, ref bson.Raw) bson.Raw {
		coll := refColl(f, ref)
		spec := ref.Lookup("operationDescription", "indexes", "0").Document()
		name := spec.Lookup("name").StringValue()
		_, err := coll.Indexes().CreateOne(f.ctx, mongo.IndexModel{Keys: spec.Lookup("key").Document(), Options: options.Index().SetName(name)})
		must(t, err)
		cs := watchRef(t, f, ref, options.ChangeStream().SetShowExpandedEvents(true))
		must(t, coll.Indexes().DropOne(f.ctx, name))
		return nextOp(t, f, cs, "dropIndexes")
	},
}

// TestCompareShapeCatchesDifferences keeps the conformance check honest:
// a renamed field, a changed type and an extra field are all reported.
func TestCompareShapeCatchesDifferences(t *testing.T) {
	ref, _ := bson.Marshal(bson.D{{Key: "a", Value: int32(1)}, {Key: "d", Value: bson.D{{Key: "x", Value: "s"}}}, {Key: "arr", Value: bson.A{int32(1)}}})
	got, _ := bson.Marshal(bson.D{{Key: "a", Value: int64(1)}, {Key: "d", Value: bson.D{{Key: "y", Value: "s"}}}, {Key: "arr", Value: bson.A{}}, {Key: "extra", Value: true}})
	var diffs []string
	compareShape(&diffs, "", ref, got, allowance{})
	want := []string{"a: type", "missing field d.x", "unexpected field d.y", "arr: array of 0", "unexpected field extra"}
	for _, w := range want {
		if !slices.ContainsFunc(diffs, func(d string) bool { return strings.HasPrefix(d, w) }) {
			t.Errorf("difference %q not reported; got %q", w, diffs)
		}
	}
	if len(diffs) != len(want) {
		t.Errorf("got %d differences, want %d: %q", len(diffs), len(want), diffs)
	}
}
