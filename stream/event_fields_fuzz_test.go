package stream

import (
	"bytes"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// FuzzScanEventFields: the one pass of scanEventFields finds, on any
// bytes, what a bsoncore lookup of each field finds, and Process's key from
// it is the key documentKeyParts reads on a valid document.
func FuzzScanEventFields(f *testing.F) {
	for _, d := range []bson.D{
		{{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}}, {Key: "operationType", Value: "insert"},
			{Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 2}}, {Key: "wallTime", Value: bson.DateTime(3)},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "d"}, {Key: "coll", Value: "c"}}},
			{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}}},
		{{Key: "operationType", Value: "invalidate"}, {Key: "operationType", Value: "insert"}},
		{{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: 1}, {Key: "of", Value: 2}}}, {Key: "_id", Value: 1}},
		{{Key: "documentKey", Value: "not a document"}, {Key: "documentKey", Value: bson.D{}}},
		{{Key: "ns", Value: "x"}, {Key: "ns", Value: bson.D{}}, {Key: "documentKey", Value: bson.D{{Key: "_id", Value: 2}}}},
	} {
		raw, _ := bson.Marshal(d)
		f.Add(raw)
		f.Add(raw[:len(raw)-3])
	}
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		at := scanEventFields(b)
		doc := bsoncore.Document(b)
		for _, c := range []struct {
			name string
			at   fieldAt
		}{
			{"_id", at.id}, {"operationType", at.operationType}, {"clusterTime", at.clusterTime},
			{"wallTime", at.wallTime}, {"splitEvent", at.splitEvent}, {"ns", at.ns}, {"documentKey", at.documentKey},
		} {
			want, _ := doc.LookupErr(c.name)
			got := c.at.in(b)
			if got.Type != want.Type || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("%s in %v: got %v %x, want %v %x", c.name, b, got.Type, got.Data, want.Type, want.Data)
			}
		}
		if doc.Validate() != nil {
			return
		}
		ns, dk, ok := documentKeyIn(b, documentKeyAt{ok: true, ns: at.ns, documentKey: at.documentKey})
		wantNS, wantDK, wantOK := documentKeyParts(b)
		if ok != wantOK || !bytes.Equal(ns, wantNS) || !bytes.Equal(dk, wantDK) {
			t.Fatalf("key of %v: %x %x %v, want %x %x %v", bson.Raw(b), ns, dk, ok, wantNS, wantDK, wantOK)
		}
	})
}
