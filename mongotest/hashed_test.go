package mongotest_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// $toHashedIndexKey gives the server's values (the manual's example), in
// aggregations and in a change stream, where a partition of the events by
// the hash of documentKey is computed, matched and removed server-side.
func TestToHashedIndexKey(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("hashed").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "s", Value: "string to hash"}}); err != nil {
		t.Fatal(err)
	}
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{{{Key: "$project", Value: bson.D{
		{Key: "h", Value: bson.D{{Key: "$toHashedIndexKey", Value: "$s"}}},
		{Key: "none", Value: bson.D{{Key: "$toHashedIndexKey", Value: "$nothing"}}},
		{Key: "null", Value: bson.D{{Key: "$toHashedIndexKey", Value: nil}}},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		H, None, Null int64
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].H != 763543691661428748 || got[0].None != got[0].Null {
		t.Fatalf("got %+v, want h 763543691661428748 and a missing value hashed as null", got)
	}
	if _, err := coll.Aggregate(ctx, mongo.Pipeline{{{Key: "$project", Value: bson.D{
		{Key: "h", Value: bson.D{{Key: "$toHashedIndexKey", Value: bson.NewDecimal128(1, 1)}}},
	}}}}); err == nil {
		t.Fatal("hash of a Decimal128: no error; mongotest should refuse it")
	}

	// Two partitions by hash range; every event lands in exactly one.
	part := func(lo, hi int64) mongo.Pipeline {
		return mongo.Pipeline{
			{{Key: "$addFields", Value: bson.D{{Key: "p", Value: bson.D{{Key: "$toHashedIndexKey", Value: "$documentKey"}}}}}},
			{{Key: "$match", Value: bson.D{{Key: "p", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lte", Value: hi}}}}}},
			{{Key: "$unset", Value: "p"}},
		}
	}
	lo, err := coll.Watch(ctx, part(-1<<63, -1))
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close(ctx)
	hi, err := coll.Watch(ctx, part(0, 1<<63-1))
	if err != nil {
		t.Fatal(err)
	}
	defer hi.Close(ctx)
	const n = 40
	for i := 2; i < 2+n; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	// What each partition should get, by mongotest's hash of each
	// documentKey; a partition that got another key fails below.
	want := map[*mongo.ChangeStream][]int32{}
	for i := int32(2); i < 2+n; i++ {
		key, _ := bson.Marshal(bson.D{{Key: "_id", Value: i}})
		h, err := query.HashedIndexKey(bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: key})
		if err != nil {
			t.Fatal(err)
		}
		if h < 0 {
			want[lo] = append(want[lo], i)
		} else {
			want[hi] = append(want[hi], i)
		}
	}
	if len(want[lo]) == 0 || len(want[hi]) == 0 {
		t.Fatalf("partitions %v: one is empty", want)
	}
	for _, cs := range []*mongo.ChangeStream{lo, hi} {
		for _, id := range want[cs] {
			if !cs.Next(ctx) {
				t.Fatalf("stream ended: %v", cs.Err())
			}
			if _, err := cs.Current.LookupErr("p"); err == nil {
				t.Fatalf("event %s still has the partition field", cs.Current)
			}
			if got := cs.Current.Lookup("documentKey", "_id").Int32(); got != id {
				t.Fatalf("partition event of key %d, want %d", got, id)
			}
		}
	}

}
