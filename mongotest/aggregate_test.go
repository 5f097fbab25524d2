package mongotest_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// seedCities inserts five documents for the aggregation tests.
func seedCities(t *testing.T, f *fixture) {
	t.Helper()
	city := func(id int32, state string, pop any, tags ...string) bson.D {
		d := bson.D{{Key: "_id", Value: id}, {Key: "state", Value: state}}
		if pop != nil {
			d = append(d, bson.E{Key: "pop", Value: pop})
		}
		if tags != nil {
			d = append(d, bson.E{Key: "tags", Value: tags})
		}
		return d
	}
	f.seed(t,
		city(1, "NY", int32(10), "big", "east"),
		city(2, "CA", int32(30), "west"),
		city(3, "NY", int64(5)),
		city(4, "TX", 2.5, "south", "big"),
		city(5, "CA", nil, "west"),
	)
}

func TestCountDocuments(t *testing.T) {
	f := newFixture(t)
	seedCities(t, f)
	tests := []struct {
		name   string
		filter bson.D
		opts   *options.CountOptionsBuilder
		want   int64
	}{
		{"all", bson.D{}, nil, 5},
		{"filter", bson.D{{Key: "state", Value: "NY"}}, nil, 2},
		{"skip and limit", bson.D{}, options.Count().SetSkip(1).SetLimit(3), 3},
		{"skip past the end", bson.D{}, options.Count().SetSkip(10), 0},
		{"no match", bson.D{{Key: "state", Value: "ZZ"}}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []options.Lister[options.CountOptions]
			if tc.opts != nil {
				opts = append(opts, tc.opts)
			}
			n, err := f.coll.CountDocuments(f.ctx, tc.filter, opts...)
			if err != nil || n != tc.want {
				t.Fatalf("CountDocuments = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
	t.Run("estimated", func(t *testing.T) {
		n, err := f.coll.EstimatedDocumentCount(f.ctx)
		if err != nil || n != 5 {
			t.Fatalf("EstimatedDocumentCount = %d, %v; want 5", n, err)
		}
	})
	t.Run("missing collection", func(t *testing.T) {
		n, err := f.db.Collection("none").CountDocuments(f.ctx, bson.D{})
		if err != nil || n != 0 {
			t.Fatalf("CountDocuments = %d, %v; want 0", n, err)
		}
	})
}

func TestAggregate(t *testing.T) {
	f := newFixture(t)
	seedCities(t, f)
	d := func(kv ...any) bson.D {
		var out bson.D
		for i := 0; i < len(kv); i += 2 {
			out = append(out, bson.E{Key: kv[i].(string), Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name     string
		pipeline mongo.Pipeline
		want     []bson.D
	}{
		{"empty pipeline", mongo.Pipeline{}, nil}, // checked by length below
		{"match sort project", mongo.Pipeline{
			{{Key: "$match", Value: d("state", d("$in", bson.A{"NY", "TX"}))}},
			{{Key: "$sort", Value: d("pop", -1)}},
			{{Key: "$project", Value: d("_id", 0, "s", "$state", "pop", 1)}},
		}, []bson.D{d("pop", int32(10), "s", "NY"), d("pop", int64(5), "s", "NY"), d("pop", 2.5, "s", "TX")}},
		{"skip limit set unset", mongo.Pipeline{
			{{Key: "$skip", Value: 1}}, {{Key: "$limit", Value: int64(2)}},
			{{Key: "$set", Value: d("copy", "$_id")}}, {{Key: "$unset", Value: bson.A{"tags", "state", "pop"}}},
		}, []bson.D{d("_id", int32(2), "copy", int32(2)), d("_id", int32(3), "copy", int32(3))}},
		{"replaceWith", mongo.Pipeline{
			{{Key: "$match", Value: d("_id", 2)}}, {{Key: "$replaceWith", Value: d("who", "$state")}},
		}, []bson.D{d("who", "CA")}},
		{"count", mongo.Pipeline{{{Key: "$match", Value: d("state", "CA")}}, {{Key: "$count", Value: "n"}}},
			[]bson.D{d("n", int32(2))}},
		{"count of nothing is no document", mongo.Pipeline{{{Key: "$match", Value: d("state", "ZZ")}}, {{Key: "$count", Value: "n"}}},
			nil},
		{"group by field with accumulators", mongo.Pipeline{
			{{Key: "$group", Value: d(
				"_id", "$state",
				"n", d("$sum", 1),
				"total", d("$sum", "$pop"),
				"avg", d("$avg", "$pop"),
				"min", d("$min", "$pop"),
				"max", d("$max", "$pop"),
				"first", d("$first", "$_id"),
				"last", d("$last", "$pop"),
				"ids", d("$push", "$_id"),
			)}},
			{{Key: "$sort", Value: d("_id", 1)}},
		}, []bson.D{
			d("_id", "CA", "n", int32(2), "total", int32(30), "avg", 30.0, "min", int32(30), "max", int32(30), "first", int32(2), "last", nil, "ids", bson.A{int32(2), int32(5)}),
			d("_id", "NY", "n", int32(2), "total", int64(15), "avg", 7.5, "min", int64(5), "max", int32(10), "first", int32(1), "last", int64(5), "ids", bson.A{int32(1), int32(3)}),
			d("_id", "TX", "n", int32(1), "total", 2.5, "avg", 2.5, "min", 2.5, "max", 2.5, "first", int32(4), "last", 2.5, "ids", bson.A{int32(4)}),
		}},
		{"group by null", mongo.Pipeline{
			{{Key: "$group", Value: d("_id", nil, "total", d("$sum", "$pop"))}},
		}, []bson.D{d("_id", nil, "total", 47.5)}},
		{"group by an object of fields", mongo.Pipeline{
			{{Key: "$match", Value: d("_id", d("$lte", 3))}},
			{{Key: "$group", Value: d("_id", d("s", "$state"), "n", d("$sum", 1))}},
		}, []bson.D{d("_id", d("s", "NY"), "n", int32(2)), d("_id", d("s", "CA"), "n", int32(1))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := f.coll.Aggregate(f.ctx, tc.pipeline)
			if err != nil {
				t.Fatal(err)
			}
			var got []bson.D
			if err := cur.All(f.ctx, &got); err != nil {
				t.Fatal(err)
			}
			if tc.name == "empty pipeline" {
				if len(got) != 5 {
					t.Fatalf("got %d documents, want 5", len(got))
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("numbers of different types group together", func(t *testing.T) {
		nums := f.db.Collection("nums")
		if _, err := nums.InsertMany(f.ctx, []bson.D{d("k", int32(1)), d("k", int64(1)), d("k", 1.0), d("k", int32(2)), d("k", d("a", int32(1))), d("k", d("a", 1.0))}); err != nil {
			t.Fatal(err)
		}
		cur, err := nums.Aggregate(f.ctx, mongo.Pipeline{{{Key: "$group", Value: d("_id", "$k", "n", d("$sum", 1))}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []bson.D
		if err := cur.All(f.ctx, &got); err != nil {
			t.Fatal(err)
		}
		want := []bson.D{d("_id", int32(1), "n", int32(3)), d("_id", int32(2), "n", int32(1)), d("_id", d("a", int32(1)), "n", int32(2))}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("batches through getMore", func(t *testing.T) {
		cur, err := f.coll.Aggregate(f.ctx, mongo.Pipeline{{{Key: "$project", Value: d("_id", 1)}}}, options.Aggregate().SetBatchSize(2))
		if err != nil {
			t.Fatal(err)
		}
		if n := cur.RemainingBatchLength(); n != 2 {
			t.Errorf("first batch has %d documents, want 2", n)
		}
		var got []bson.D
		if err := cur.All(f.ctx, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 || got[4][0].Value != int32(5) {
			t.Fatalf("got %v, want the five ids", got)
		}
		if n := f.srv.OpenCursors(); n != 0 {
			t.Errorf("%d cursors left open", n)
		}
	})
}

func TestAggregateErrors(t *testing.T) {
	f := newFixture(t)
	seedCities(t, f)
	tests := []struct {
		name     string
		pipeline mongo.Pipeline
		code     int
	}{
		{"unknown stage", mongo.Pipeline{{{Key: "$frobnicate", Value: 1}}}, 40324},
		{"known but unsupported stage", mongo.Pipeline{{{Key: "$lookup", Value: bson.D{}}}}, 238},
		{"unsupported accumulator", mongo.Pipeline{{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "s", Value: bson.D{{Key: "$addToSet", Value: "$a"}}}}}}}, 238},
		{"unknown accumulator", mongo.Pipeline{{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "s", Value: bson.D{{Key: "$nope", Value: "$a"}}}}}}}, 15952},
		{"group without _id", mongo.Pipeline{{{Key: "$group", Value: bson.D{{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}}}, 15955},
		{"unsupported expression", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$concat", Value: bson.A{"a"}}}}}}}}, 168},
		{"negative skip", mongo.Pipeline{{{Key: "$skip", Value: -1}}}, 5107200},
		{"zero limit", mongo.Pipeline{{{Key: "$limit", Value: 0}}}, 15958},
		{"limit not a number", mongo.Pipeline{{{Key: "$limit", Value: "1"}}}, 15957},
		{"empty sort", mongo.Pipeline{{{Key: "$sort", Value: bson.D{}}}}, 15976},
		{"count with a dot", mongo.Pipeline{{{Key: "$count", Value: "a.b"}}}, 40160},
		{"changeStream not first", mongo.Pipeline{{{Key: "$match", Value: bson.D{}}}, {{Key: "$changeStream", Value: bson.D{}}}}, 40602},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.coll.Aggregate(f.ctx, tc.pipeline)
			if got := errCode(err); got != tc.code {
				t.Fatalf("error %v: code %d, want %d", err, got, tc.code)
			}
		})
	}
}

func TestDistinct(t *testing.T) {
	f := newFixture(t)
	seedCities(t, f)
	f.seed(t, bson.D{{Key: "_id", Value: int32(6)}, {Key: "state", Value: "NY"}, {Key: "pop", Value: 10.0}})
	tests := []struct {
		name   string
		key    string
		filter bson.D
		want   bson.A
	}{
		{"strings in order", "state", bson.D{}, bson.A{"CA", "NY", "TX"}},
		{"numbers equal across types", "pop", bson.D{}, bson.A{2.5, int64(5), int32(10), int32(30)}},
		{"array elements", "tags", bson.D{}, bson.A{"big", "east", "south", "west"}},
		{"with a filter", "tags", bson.D{{Key: "state", Value: "CA"}}, bson.A{"west"}},
		{"missing field", "nope", bson.D{}, bson.A{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.coll.Distinct(f.ctx, tc.key, tc.filter)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			var got bson.A
			if err := res.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got == nil {
				got = bson.A{}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
