package mongotest_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type truncated struct {
	Field   string `bson:"field"`
	NewSize int32  `bson:"newSize"`
}

type updateDescription struct {
	UpdatedFields      bson.M      `bson:"updatedFields"`
	RemovedFields      []string    `bson:"removedFields"`
	TruncatedArrays    []truncated `bson:"truncatedArrays"`
	DisambiguatedPaths bson.M      `bson:"disambiguatedPaths,omitempty"`
}

type changeEvent struct {
	OperationType     string             `bson:"operationType"`
	UpdateDescription *updateDescription `bson:"updateDescription"`
	FullDocument      bson.D             `bson:"fullDocument"`
	DocumentKey       bson.D             `bson:"documentKey"`
}

// watch opens a change stream on the fixture's collection.
func (f *fixture) watch(t *testing.T, opts ...options.Lister[options.ChangeStreamOptions]) *mongo.ChangeStream {
	t.Helper()
	cs, err := f.coll.Watch(f.ctx, mongo.Pipeline{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(f.ctx) })
	return cs
}

// next returns the next event of cs.
func next(t *testing.T, f *fixture, cs *mongo.ChangeStream) changeEvent {
	t.Helper()
	if !cs.Next(f.ctx) {
		t.Fatalf("no event: %v", cs.Err())
	}
	var ev changeEvent
	if err := cs.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func ud(updated bson.M, removed []string, trunc ...truncated) *updateDescription {
	if updated == nil {
		updated = bson.M{}
	}
	if removed == nil {
		removed = []string{}
	}
	if trunc == nil {
		trunc = []truncated{}
	}
	return &updateDescription{UpdatedFields: updated, RemovedFields: removed, TruncatedArrays: trunc}
}

func TestUpdateOperators(t *testing.T) {
	base := bson.D{
		{Key: "_id", Value: int32(1)},
		{Key: "n", Value: int32(1)},
		{Key: "s", Value: "x"},
		{Key: "arr", Value: bson.A{int32(1), int32(2), int32(3)}},
		{Key: "sub", Value: bson.D{{Key: "a", Value: int32(1)}}},
	}
	with := func(kv ...bson.E) bson.D {
		out := append(bson.D(nil), base...)
		for _, e := range kv {
			found := false
			for i := range out {
				if out[i].Key == e.Key {
					out[i].Value, found = e.Value, true
				}
			}
			if !found {
				out = append(out, e)
			}
		}
		return out
	}
	without := func(d bson.D, key string) bson.D {
		var out bson.D
		for _, e := range d {
			if e.Key != key {
				out = append(out, e)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		update  any
		wantDoc bson.D
		wantOp  string // "" when the update is a no-op
		wantUD  *updateDescription
	}{
		{"set new and nested", bson.D{{Key: "$set", Value: bson.D{{Key: "z", Value: "new"}, {Key: "sub.b", Value: int32(2)}}}},
			with(bson.E{Key: "sub", Value: bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: int32(2)}}}, bson.E{Key: "z", Value: "new"}),
			"update", ud(bson.M{"z": "new", "sub.b": int32(2)}, nil)},
		{"set creates intermediate documents", bson.D{{Key: "$set", Value: bson.D{{Key: "p.q.r", Value: true}}}},
			with(bson.E{Key: "p", Value: bson.D{{Key: "q", Value: bson.D{{Key: "r", Value: true}}}}}),
			"update", ud(bson.M{"p": bson.D{{Key: "q", Value: bson.D{{Key: "r", Value: true}}}}}, nil)},
		{"set same value is a no-op", bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(1)}}}}, base, "", nil},
		{"unset", bson.D{{Key: "$unset", Value: bson.D{{Key: "s", Value: ""}, {Key: "missing", Value: ""}}}},
			without(base, "s"), "update", ud(nil, []string{"s"})},
		{"inc and mul promote", bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(2)}}}, {Key: "$mul", Value: bson.D{{Key: "m", Value: 2.5}}}},
			with(bson.E{Key: "n", Value: int64(3)}, bson.E{Key: "m", Value: 0.0}), "update", ud(bson.M{"n": int64(3), "m": 0.0}, nil)},
		{"min and max", bson.D{{Key: "$min", Value: bson.D{{Key: "n", Value: int32(0)}}}, {Key: "$max", Value: bson.D{{Key: "sub.a", Value: int32(0)}}}},
			with(bson.E{Key: "n", Value: int32(0)}), "update", ud(bson.M{"n": int32(0)}, nil)},
		{"rename", bson.D{{Key: "$rename", Value: bson.D{{Key: "s", Value: "t"}}}},
			append(without(base, "s"), bson.E{Key: "t", Value: "x"}), "update", ud(bson.M{"t": "x"}, []string{"s"})},
		{"push appends by position", bson.D{{Key: "$push", Value: bson.D{{Key: "arr", Value: bson.D{{Key: "$each", Value: bson.A{int32(4), int32(5)}}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2), int32(3), int32(4), int32(5)}}), "update", ud(bson.M{"arr.3": int32(4), "arr.4": int32(5)}, nil)},
		{"push with position and slice", bson.D{{Key: "$push", Value: bson.D{{Key: "arr", Value: bson.D{{Key: "$each", Value: bson.A{int32(0)}}, {Key: "$position", Value: 0}, {Key: "$slice", Value: 2}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(0), int32(1)}}), "update", ud(bson.M{"arr": bson.A{int32(0), int32(1)}}, nil)},
		{"addToSet skips present", bson.D{{Key: "$addToSet", Value: bson.D{{Key: "arr", Value: bson.D{{Key: "$each", Value: bson.A{int32(3), int32(9)}}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2), int32(3), int32(9)}}), "update", ud(bson.M{"arr.3": int32(9)}, nil)},
		{"pop last", bson.D{{Key: "$pop", Value: bson.D{{Key: "arr", Value: 1}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2)}}), "update", ud(bson.M{"arr": bson.A{int32(1), int32(2)}}, nil)},
		{"pull by condition", bson.D{{Key: "$pull", Value: bson.D{{Key: "arr", Value: bson.D{{Key: "$gte", Value: 2}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1)}}), "update", ud(bson.M{"arr": bson.A{int32(1)}}, nil)},
		{"set array element", bson.D{{Key: "$set", Value: bson.D{{Key: "arr.1", Value: int32(20)}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(20), int32(3)}}), "update", ud(bson.M{"arr.1": int32(20)}, nil)},
		{"all positional", bson.D{{Key: "$inc", Value: bson.D{{Key: "arr.$[]", Value: 10}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(11), int32(12), int32(13)}}), "update", ud(bson.M{"arr.0": int32(11), "arr.1": int32(12), "arr.2": int32(13)}, nil)},
		{"setOnInsert ignored on update", bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "z", Value: 1}}}}, base, "", nil},
		{"replacement keeps _id", bson.D{{Key: "only", Value: "this"}},
			bson.D{{Key: "_id", Value: int32(1)}, {Key: "only", Value: "this"}}, "replace", nil},
		{"pipeline truncates an array", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "arr", Value: bson.A{int32(1), int32(2)}}, {Key: "copy", Value: "$s"}, {Key: "lit", Value: bson.D{{Key: "$literal", Value: "$s"}}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1), int32(2)}}, bson.E{Key: "copy", Value: "x"}, bson.E{Key: "lit", Value: "$s"}),
			"update", ud(bson.M{"copy": "x", "lit": "$s"}, nil, truncated{"arr", 2})},
		// A real server logs a whole field when its delta would not be
		// smaller than the new value: {d: {a: false}} is larger than {}.
		{"pipeline shrinking a small array logs it whole", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "arr", Value: bson.A{int32(1)}}}}}},
			with(bson.E{Key: "arr", Value: bson.A{int32(1)}}), "update", ud(bson.M{"arr": bson.A{int32(1)}}, nil)},
		{"pipeline project with a computed field", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "n", Value: 1}, {Key: "t", Value: "$s"}}}}},
			bson.D{base[0], base[1], {Key: "t", Value: "x"}}, "replace", nil},
		{"pipeline set merges into a document", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "sub.b", Value: "$n"}}}}},
			with(bson.E{Key: "sub", Value: bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: int32(1)}}}), "update",
			ud(bson.M{"sub": bson.D{{Key: "a", Value: int32(1)}, {Key: "b", Value: int32(1)}}}, nil)},
		{"pipeline unset", mongo.Pipeline{{{Key: "$unset", Value: bson.A{"s", "sub.a"}}}},
			bson.D{base[0], base[1], base[3], {Key: "sub", Value: bson.D{}}}, "update", ud(bson.M{"sub": bson.D{}}, []string{"s"})},
		// A pipeline whose delta is not smaller than the document is
		// logged as a replacement by a real server: a replace event.
		{"pipeline rewriting everything is a replace", mongo.Pipeline{{{Key: "$replaceWith", Value: bson.D{{Key: "_id", Value: "$_id"}, {Key: "v", Value: int32(1)}}}}},
			bson.D{base[0], {Key: "v", Value: int32(1)}}, "replace", nil},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.seed(t, base)
			cs := f.watch(t)
			var r *mongo.UpdateResult
			var err error
			// A document without operators is a replacement: the driver
			// sends those through ReplaceOne only.
			if d, ok := tc.update.(bson.D); ok && !strings.HasPrefix(d[0].Key, "$") {
				r, err = f.coll.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, tc.update)
			} else {
				r, err = f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, tc.update)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantMod := int64(1)
			if tc.wantOp == "" {
				wantMod = 0
			}
			if r.MatchedCount != 1 || r.ModifiedCount != wantMod {
				t.Errorf("matched %d modified %d, want 1 %d", r.MatchedCount, r.ModifiedCount, wantMod)
			}
			if diff := cmp.Diff([]bson.D{tc.wantDoc}, f.all(t)); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
			// A marker insert shows whether the update logged an event.
			if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: "marker"}}); err != nil {
				t.Fatal(err)
			}
			ev := next(t, f, cs)
			if tc.wantOp == "" {
				if ev.OperationType != "insert" {
					t.Fatalf("a no-op update logged %q", ev.OperationType)
				}
				return
			}
			if ev.OperationType != tc.wantOp {
				t.Fatalf("operationType %q, want %q", ev.OperationType, tc.wantOp)
			}
			if diff := cmp.Diff(tc.wantUD, ev.UpdateDescription); diff != "" {
				t.Errorf("updateDescription (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdateErrors(t *testing.T) {
	tests := []struct {
		name   string
		update any
		opts   []options.Lister[options.UpdateOneOptions]
		code   int
	}{
		{"unknown operator", bson.D{{Key: "$foo", Value: bson.D{{Key: "a", Value: 1}}}}, nil, 9},
		{"conflicting paths", bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 1}}}, {Key: "$inc", Value: bson.D{{Key: "a.b", Value: 1}}}}, nil, 40},
		{"_id is immutable", bson.D{{Key: "$set", Value: bson.D{{Key: "_id", Value: 2}}}}, nil, 66},
		{"inc non-numeric", bson.D{{Key: "$inc", Value: bson.D{{Key: "s", Value: 1}}}}, nil, 14},
		{"push onto non-array", bson.D{{Key: "$push", Value: bson.D{{Key: "s", Value: 1}}}}, nil, 2},
		{"set through a scalar", bson.D{{Key: "$set", Value: bson.D{{Key: "s.x", Value: 1}}}}, nil, 28},
		{"missing array filter", bson.D{{Key: "$set", Value: bson.D{{Key: "arr.$[e]", Value: 1}}}}, nil, 2},
		{"unsupported expression", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "a", Value: bson.D{{Key: "$concat", Value: bson.A{"a"}}}}}}}}, nil, 168},
		{"unsupported stage", mongo.Pipeline{{{Key: "$group", Value: bson.D{}}}}, nil, 72},
		{"set with a non-object", mongo.Pipeline{{{Key: "$set", Value: 1}}}, nil, 40272},
		{"project with a non-object", mongo.Pipeline{{{Key: "$project", Value: "a"}}}, nil, 15969},
		{"replaceRoot without newRoot", mongo.Pipeline{{{Key: "$replaceRoot", Value: bson.D{}}}}, nil, 40231},
		{"replaceWith a scalar", mongo.Pipeline{{{Key: "$replaceWith", Value: "$s"}}}, nil, 40228},
		{"unset an empty array", mongo.Pipeline{{{Key: "$unset", Value: bson.A{}}}}, nil, 31119},
		{"unset _id", mongo.Pipeline{{{Key: "$unset", Value: "_id"}}}, nil, 66},
		{"stage with two fields", mongo.Pipeline{{{Key: "$set", Value: bson.D{}}, {Key: "$unset", Value: "s"}}}, nil, 40323},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.seed(t, bson.D{{Key: "_id", Value: 1}, {Key: "s", Value: "x"}, {Key: "arr", Value: bson.A{1}}})
			_, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, tc.update, tc.opts...)
			if got := errCode(err); got != tc.code {
				t.Fatalf("error %v: code %d, want %d", err, got, tc.code)
			}
		})
	}
	t.Run("replacement changing _id", func(t *testing.T) {
		f := newFixture(t)
		f.seed(t, bson.D{{Key: "_id", Value: 1}})
		_, err := f.coll.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}})
		if got := errCode(err); got != 66 {
			t.Fatalf("error %v: code %d, want 66", err, got)
		}
	})
}

func TestUpdateManyUpsertAndArrayFilters(t *testing.T) {
	f := newFixture(t)
	f.seed(t,
		bson.D{{Key: "_id", Value: int32(1)}, {Key: "g", Value: "a"}, {Key: "grades", Value: bson.A{int32(80), int32(95)}}},
		bson.D{{Key: "_id", Value: int32(2)}, {Key: "g", Value: "a"}, {Key: "grades", Value: bson.A{int32(99)}}},
		bson.D{{Key: "_id", Value: int32(3)}, {Key: "g", Value: "b"}, {Key: "grades", Value: bson.A{int32(50)}}},
	)
	r, err := f.coll.UpdateMany(f.ctx, bson.D{{Key: "g", Value: "a"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "grades.$[hi]", Value: int32(100)}}}},
		options.UpdateMany().SetArrayFilters([]any{bson.D{{Key: "hi", Value: bson.D{{Key: "$gte", Value: 90}}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if r.MatchedCount != 2 || r.ModifiedCount != 2 {
		t.Errorf("UpdateMany matched %d modified %d, want 2 2", r.MatchedCount, r.ModifiedCount)
	}
	r, err = f.coll.UpdateOne(f.ctx, bson.D{{Key: "g", Value: "c"}, {Key: "n", Value: bson.D{{Key: "$eq", Value: int32(7)}}}, {Key: "x", Value: bson.D{{Key: "$gt", Value: 1}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "grades", Value: bson.A{}}}}, {Key: "$setOnInsert", Value: bson.D{{Key: "_id", Value: int32(4)}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		t.Fatal(err)
	}
	if r.UpsertedCount != 1 || r.UpsertedID != int32(4) {
		t.Errorf("upsert: %+v", r)
	}
	r, err = f.coll.UpdateOne(f.ctx, bson.D{{Key: "grades", Value: int32(50)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "grades.$", Value: int32(51)}}}})
	if err != nil || r.ModifiedCount != 1 {
		t.Fatalf("positional update: %+v, %v", r, err)
	}
	want := []bson.D{
		{{Key: "_id", Value: int32(1)}, {Key: "g", Value: "a"}, {Key: "grades", Value: bson.A{int32(80), int32(100)}}},
		{{Key: "_id", Value: int32(2)}, {Key: "g", Value: "a"}, {Key: "grades", Value: bson.A{int32(100)}}},
		{{Key: "_id", Value: int32(3)}, {Key: "g", Value: "b"}, {Key: "grades", Value: bson.A{int32(51)}}},
		{{Key: "_id", Value: int32(4)}, {Key: "g", Value: "c"}, {Key: "n", Value: int32(7)}, {Key: "grades", Value: bson.A{}}},
	}
	if diff := cmp.Diff(want, f.all(t)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUpdateEventImagesAndDisambiguation(t *testing.T) {
	f := newFixture(t)
	if err := f.db.CreateCollection(f.ctx, "c", options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}})); err != nil {
		t.Fatal(err)
	}
	f.seed(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "a", Value: bson.D{{Key: "1", Value: int32(1)}}}, {Key: "b", Value: bson.A{bson.D{{Key: "1", Value: int32(1)}}}}})
	cs := f.watch(t, options.ChangeStream().SetShowExpandedEvents(true).SetFullDocument(options.WhenAvailable))
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "a.1", Value: int32(2)}, {Key: "b.0.1", Value: int32(3)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "c", Value: int32(1)}}}}); err != nil {
		t.Fatal(err)
	}
	ev := next(t, f, cs)
	want := ud(bson.M{"a.1": int32(2), "b.0.1": int32(3)}, nil)
	want.DisambiguatedPaths = bson.M{"a.1": bson.A{"a", "1"}, "b.0.1": bson.A{"b", int32(0), "1"}}
	if diff := cmp.Diff(want, ev.UpdateDescription); diff != "" {
		t.Errorf("updateDescription (-want +got):\n%s", diff)
	}
	if len(ev.FullDocument) == 0 {
		t.Errorf("fullDocument whenAvailable missing on a collection with images")
	}
	// With showExpandedEvents, an unambiguous update still carries an
	// empty disambiguatedPaths, as a real server's does.
	var raw bson.Raw
	if !cs.Next(f.ctx) {
		t.Fatal(cs.Err())
	}
	raw = bson.Raw(cs.Current)
	dp, err := raw.LookupErr("updateDescription", "disambiguatedPaths")
	if err != nil || dp.Type != bson.TypeEmbeddedDocument || len(dp.Document()) != 5 {
		t.Errorf("disambiguatedPaths = %v, %v; want {}", dp, err)
	}
}
