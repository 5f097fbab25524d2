package query

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// SortKey is one field of a sort specification.
type SortKey struct {
	path []string
	dir  int
}

// ParseSort parses {field: 1|-1, …}.
func ParseSort(d bsoncore.Document) ([]SortKey, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "sort: %v", err)
	}
	keys := make([]SortKey, 0, len(elems))
	for _, el := range elems {
		v := el.Value()
		if sd, ok := v.DocumentOK(); ok {
			first, _ := bsonutil.FirstKey(sd)
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support sorting by %s on '%s'", first, el.Key())
		}
		n, ok := bsonutil.NumberOf(v)
		if !ok || (n != 1 && n != -1) {
			return nil, codes.Errorf(codes.Location15974, "Illegal key in $sort specification: %s: %s", el.Key(), v)
		}
		keys = append(keys, SortKey{path: strings.Split(el.Key(), "."), dir: int(n)})
	}
	return keys, nil
}

// sortValue is a document's key for one sort field: for an array the
// smallest element ascending and the largest descending, null when
// missing.
func sortValue(d bsoncore.Document, k SortKey) bsoncore.Value {
	if d == nil {
		return bsoncore.Value{Type: bsoncore.TypeNull}
	}
	cs := PathValues(d, k.path)
	var best bsoncore.Value
	have := false
	for _, c := range cs {
		v := c.v
		if v.Type == bsoncore.TypeArray {
			// An array sorts by its elements; an empty one below null.
			arr, _ := v.ArrayOK()
			if vals, _ := arr.Values(); len(vals) > 0 {
				continue
			}
			v = bsoncore.Value{Type: bsoncore.TypeUndefined}
		}
		if v.Type == 0 {
			v = bsoncore.Value{Type: bsoncore.TypeNull}
		}
		if !have || bsonutil.CompareValues(v, best)*k.dir < 0 {
			best, have = v, true
		}
	}
	if !have {
		return bsoncore.Value{Type: bsoncore.TypeNull}
	}
	return best
}

// CompareBySort orders two documents by a sort specification.
func CompareBySort(a, b bsoncore.Document, keys []SortKey) int {
	for _, k := range keys {
		if c := bsonutil.CompareValues(sortValue(a, k), sortValue(b, k)); c != 0 {
			return c * k.dir
		}
	}
	return 0
}
