package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// $merge writes an aggregation's results into another collection, and the
// writes are change events like any other.
func TestAggregateMergeEmitsEvents(t *testing.T) {
	f := newFixture(t)
	target := f.db.Collection("totals")
	if _, err := target.InsertOne(f.ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 0}, {Key: "keep", Value: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.coll.InsertMany(f.ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: "a"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "k", Value: "a"}},
		bson.D{{Key: "_id", Value: 3}, {Key: "k", Value: "b"}},
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := target.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(f.ctx)
	pipeline := mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$k"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
		{{Key: "$merge", Value: bson.D{{Key: "into", Value: "totals"}}}},
	}
	cur, err := f.coll.Aggregate(f.ctx, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	_ = cur.Close(f.ctx)
	var a struct {
		N    int
		Keep bool
	}
	if err := target.FindOne(f.ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&a); err != nil || a.N != 2 || !a.Keep {
		t.Fatalf("merged a: %+v, %v; want n 2 and the kept field", a, err)
	}
	for _, want := range []string{"update", "insert"} {
		if !cs.Next(f.ctx) {
			t.Fatalf("stream ended: %v", cs.Err())
		}
		if got := cs.Current.Lookup("operationType").StringValue(); got != want {
			t.Fatalf("event %s, want %s", got, want)
		}
	}
}
