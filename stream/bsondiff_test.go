package stream_test

import (
	"cmp"
	"slices"

	gocmp "github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// bsonField is one element of a BSON document or array as the tests
// compare them: its name, BSON type and value; a document's or array's
// elements are its Elems, a document's sorted by name, so that two
// documents with the same fields in another order compare equal.
type bsonField struct {
	Key   string
	Type  string
	Value string // the value in Extended JSON; empty for documents and arrays
	Elems []bsonField
}

// bsonFields returns the fields of doc, to compare with go-cmp.
func bsonFields(doc bson.Raw, sorted bool) []bsonField {
	elems, err := doc.Elements()
	if err != nil {
		return []bsonField{{Key: "!malformed", Value: err.Error()}}
	}
	out := make([]bsonField, 0, len(elems))
	for _, el := range elems {
		v := el.Value()
		f := bsonField{Key: el.Key(), Type: v.Type.String()}
		switch v.Type {
		case bson.TypeEmbeddedDocument:
			f.Elems = bsonFields(v.Document(), true)
		case bson.TypeArray:
			f.Elems = bsonFields(bson.Raw(v.Array()), false)
		default:
			f.Value = v.String()
		}
		out = append(out, f)
	}
	if sorted {
		slices.SortStableFunc(out, func(a, b bsonField) int { return cmp.Compare(a.Key, b.Key) })
	}
	return out
}

// diffBSON compares two documents field by field, BSON types included,
// in any order of their fields; "" when they are equal.
func diffBSON(want, got bson.Raw) string {
	return gocmp.Diff(bsonFields(want, true), bsonFields(got, true))
}
