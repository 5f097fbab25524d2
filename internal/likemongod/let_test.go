package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// $expr compares fields with let variables, in reads and writes.
func TestExprAndLet(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertMany(f.ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}},
		bson.D{{Key: "_id", Value: 2}, {Key: "x", Value: 5}},
	}); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "$expr", Value: bson.D{{Key: "$gt", Value: bson.A{"$x", "$$min"}}}}}
	let := bson.D{{Key: "min", Value: 3}}
	n, err := f.coll.CountDocuments(f.ctx, bson.D{{Key: "$expr", Value: bson.D{{Key: "$eq", Value: bson.A{"$_id", "$x"}}}}})
	if err != nil || n != 1 {
		t.Fatalf("count $expr $eq = %d, %v; want 1", n, err)
	}
	cur, err := f.coll.Find(f.ctx, filter, options.Find().SetLet(let))
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.M
	if err := cur.All(f.ctx, &docs); err != nil || len(docs) != 1 || docs[0]["_id"] != int32(2) {
		t.Fatalf("find with let: %v, %v", docs, err)
	}
	up := mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "tag", Value: "$$tag"}}}}}
	res, err := f.coll.UpdateOne(f.ctx, filter, up, options.UpdateOne().SetLet(bson.D{{Key: "min", Value: 3}, {Key: "tag", Value: "big"}}))
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("update with let: %+v, %v", res, err)
	}
	var d struct{ Tag string }
	if err := f.coll.FindOne(f.ctx, bson.D{{Key: "_id", Value: 2}}).Decode(&d); err != nil || d.Tag != "big" {
		t.Fatalf("updated document %+v, %v", d, err)
	}
}
