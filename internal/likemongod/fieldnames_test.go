package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Field names with dots and dollars are stored through $setField, as on
// MongoDB 5.0+; an _id with a '$'-prefixed field cannot be stored.
func TestDottedAndDollarFieldNames(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "foo", Value: bson.D{}}}); err != nil {
		t.Fatal(err)
	}
	pipeline := mongo.Pipeline{
		{{Key: "$replaceWith", Value: bson.D{{Key: "$setField", Value: bson.D{
			{Key: "field", Value: bson.D{{Key: "$literal", Value: "$a"}}}, {Key: "value", Value: 1}, {Key: "input", Value: "$$ROOT"}}}}}},
		{{Key: "$set", Value: bson.D{{Key: "foo", Value: bson.D{{Key: "$setField", Value: bson.D{
			{Key: "field", Value: "a.b"}, {Key: "value", Value: 2}, {Key: "input", Value: "$foo"}}}}}}}},
	}
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, pipeline); err != nil {
		t.Fatal(err)
	}
	got, err := f.coll.FindOne(f.ctx, bson.D{{Key: "_id", Value: 1}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := got.LookupErr("$a"); err != nil || v.Int32() != 1 {
		t.Errorf("field $a: %s", got)
	}
	if v, err := got.Lookup("foo").Document().LookupErr("a.b"); err != nil || v.Int32() != 2 {
		t.Errorf("field foo.'a.b': %s", got)
	}
	_, err = f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$a", Value: 1}}}})
	wantCode(t, err, 53, "insert with _id {$a: 1}")
}
