package mongotest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestBSONSortOrder checks that values of every type sort as MongoDB
// orders them: by type bracket, numbers across types by value.
func TestBSONSortOrder(t *testing.T) {
	f := newFixture(t)
	dec, _ := bson.ParseDecimal128("2.5")
	oid := bson.NewObjectID()
	vals := []any{ // in the order a real server sorts them
		bson.MinKey{},
		nil,
		int32(1),
		1.5,
		int64(2),
		dec,
		"a",
		"b",
		bson.D{{Key: "a", Value: int32(1)}},
		bson.D{{Key: "a", Value: int32(2)}},
		bson.Binary{Subtype: 0, Data: []byte{1}},
		oid,
		false,
		true,
		bson.DateTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()),
		bson.Timestamp{T: 1, I: 1},
		bson.Regex{Pattern: "x"},
		bson.MaxKey{},
	}
	// Insert in reverse so that insertion order cannot pass for sorting.
	for i := len(vals) - 1; i >= 0; i-- {
		if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: int32(i)}, {Key: "v", Value: vals[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []int{1, -1} {
		cur, err := f.coll.Find(f.ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "v", Value: dir}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			ID int32 `bson:"_id"`
		}
		if err := cur.All(f.ctx, &got); err != nil {
			t.Fatal(err)
		}
		var order, want []int32
		for i := range got {
			order = append(order, got[i].ID)
			if dir == 1 {
				want = append(want, int32(i))
			} else {
				want = append(want, int32(len(got)-1-i))
			}
		}
		if diff := cmp.Diff(want, order); diff != "" {
			t.Errorf("sort %d (-want +got):\n%s", dir, diff)
		}
	}
	// Range queries stay inside a type bracket.
	cur, err := f.coll.Find(f.ctx, bson.D{{Key: "v", Value: bson.D{{Key: "$gte", Value: int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.D
	if err := cur.All(f.ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 4 {
		t.Errorf("$gte 1 matched %d documents, want the 4 numbers", len(docs))
	}
}

// TestMatchOnChangeEvents checks filters after $changeStream, where they
// run on event documents.
func TestMatchOnChangeEvents(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}})
	cs, err := f.coll.Watch(f.ctx, mongo.Pipeline{{{Key: "$match", Value: bson.D{
		{Key: "operationType", Value: bson.D{{Key: "$in", Value: bson.A{"update", "delete"}}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "updateDescription.updatedFields.x", Value: bson.D{{Key: "$exists", Value: true}}}},
			bson.D{{Key: "documentKey._id", Value: bson.D{{Key: "$gte", Value: 2}}}},
		}},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(f.ctx)
	steps := []func() error{
		func() error { _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); return err },
		func() error {
			_, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "y", Value: 1}}}})
			return err
		},
		func() error {
			_, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}})
			return err
		},
		func() error { _, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: 1}}); return err },
		func() error { _, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); return err },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(got) < 2 && cs.Next(f.ctx) {
		got = append(got, cs.Current.Lookup("operationType").StringValue()+" "+cs.Current.Lookup("documentKey", "_id").String())
	}
	if diff := cmp.Diff([]string{`update {"$numberInt":"1"}`, `delete {"$numberInt":"2"}`}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
