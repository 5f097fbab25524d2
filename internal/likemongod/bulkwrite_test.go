package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The client-level bulkWrite of MongoDB 8.0 writes to several
// collections in one command and reports every operation's result.
func TestClientBulkWrite(t *testing.T) {
	f := newFixture(t)
	db := f.db.Name()
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	writes := []mongo.ClientBulkWrite{
		{Database: db, Collection: "orders", Model: &mongo.ClientInsertOneModel{Document: bson.D{{Key: "_id", Value: 2}}}},
		{Database: db, Collection: "outbox", Model: &mongo.ClientInsertOneModel{Document: bson.D{{Key: "_id", Value: "e1"}}}},
		{Database: db, Collection: "orders", Model: &mongo.ClientUpdateOneModel{Filter: bson.D{{Key: "_id", Value: 1}}, Update: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 2}}}}}},
		{Database: db, Collection: "orders", Model: &mongo.ClientDeleteOneModel{Filter: bson.D{{Key: "_id", Value: 2}}}},
	}
	res, err := f.client.BulkWrite(f.ctx, writes, options.ClientBulkWrite().SetVerboseResults(true))
	if err != nil {
		t.Fatal(err)
	}
	if res.InsertedCount != 2 || res.MatchedCount != 1 || res.ModifiedCount != 1 || res.DeletedCount != 1 {
		t.Fatalf("counts %+v", res)
	}
	if u := res.UpdateResults[2]; u.MatchedCount != 1 || u.ModifiedCount != 1 {
		t.Fatalf("update result %+v", u)
	}
	if n, err := f.db.Collection("outbox").CountDocuments(f.ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("outbox count = %d, %v", n, err)
	}
	var doc struct{ X int }
	if err := f.coll.FindOne(f.ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 2 {
		t.Fatalf("updated document %+v, %v", doc, err)
	}
}
