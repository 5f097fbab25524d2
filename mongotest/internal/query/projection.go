package query

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// findOnlyOperators are the projection operators of find (and of
// findAndModify's fields) that $project does not have. mongotest does not
// evaluate them and names them in a NotImplemented error.
var findOnlyOperators = map[string]bool{"$slice": true, "$elemMatch": true, "$meta": true}

// CompileFindProjection compiles find's projection, or findAndModify's
// fields. Since MongoDB 4.4 it is a $project specification (inclusions,
// exclusions, nested fields and computed fields) plus the find-only
// operators: the positional "a.$", $slice, $elemMatch and $meta, which
// mongotest rejects by name.
func CompileFindProjection(d bsoncore.Document) (*Projection, error) {
	if err := checkFindOnly(d); err != nil {
		return nil, err
	}
	return compileProject(d, "")
}

// checkFindOnly rejects the find-only projection operators, at any depth.
func checkFindOnly(d bsoncore.Document) error {
	elems, err := d.Elements()
	if err != nil {
		return codes.Errorf(codes.FailedToParse, "projection: %v", err)
	}
	for _, el := range elems {
		k := el.Key()
		if strings.HasPrefix(k, "$") || strings.Contains(k, ".$") {
			return codes.Errorf(codes.NotImplemented, "mongotest does not support the projection operator in '%s'", k)
		}
		sub, ok := el.Value().DocumentOK()
		if !ok {
			continue
		}
		first, _ := bsonutil.FirstKey(sub)
		if findOnlyOperators[first] {
			return codes.Errorf(codes.NotImplemented, "mongotest does not support the projection operator %s (on field '%s')", first, k)
		}
		if !strings.HasPrefix(first, "$") {
			if err := checkFindOnly(sub); err != nil {
				return err
			}
		}
	}
	return nil
}
