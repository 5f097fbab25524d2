package stream

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// FuzzDocumentKeyOf: the default key of Process never panics on any bytes,
// and on a valid document it is the namespace and documentKey that
// bsoncore's lookups find (or no key when documentKey is not a document).
func FuzzDocumentKeyOf(f *testing.F) {
	for _, d := range []bson.D{
		{{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}}, {Key: "operationType", Value: "insert"},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "d"}, {Key: "coll", Value: "c"}}},
			{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}}},
		{{Key: "operationType", Value: "drop"}, {Key: "ns", Value: bson.D{{Key: "db", Value: "d"}}}},
		{{Key: "documentKey", Value: "not a document"}},
		{{Key: "documentKey", Value: bson.D{}}},
		{{Key: "documentKey", Value: 1}, {Key: "documentKey", Value: bson.D{{Key: "_id", Value: 2}}}},
		{{Key: "ns", Value: "x"}, {Key: "ns", Value: bson.D{}}, {Key: "documentKey", Value: bson.D{{Key: "_id", Value: 2}}}},
	} {
		raw, _ := bson.Marshal(d)
		f.Add(raw)
	}
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, ok := documentKeyOf(b)
		doc := bsoncore.Document(b)
		if doc.Validate() != nil {
			return
		}
		dk, err := doc.LookupErr("documentKey")
		wantOK := err == nil && dk.Type == bsoncore.TypeEmbeddedDocument
		if ok != wantOK {
			t.Fatalf("documentKeyOf(%v): ok %v, want %v", bson.Raw(b), ok, wantOK)
		}
		if !ok {
			return
		}
		want := string(dk.Data)
		if ns, err := doc.LookupErr("ns"); err == nil && ns.Type == bsoncore.TypeEmbeddedDocument {
			want = string(ns.Data) + want
		}
		if key != want {
			t.Fatalf("documentKeyOf(%v) = %q, want %q", bson.Raw(b), key, want)
		}
	})
}
