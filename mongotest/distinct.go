package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(handleDistinct, "distinct")
}

// handleDistinct is {distinct: coll, key: "a.b", query?}: the distinct
// values the key reaches in the matching documents, an array's elements
// each counting as a value, in BSON order.
func handleDistinct(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	kv := r.arg("key")
	key, ok := kv.StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'distinct.key' is the wrong type '%s', expected type 'string'", bsonutil.TypeName(kv.Type))
	}
	if key == "" {
		return nil, codes.Errorf(codes.Location40352, "FieldPath cannot be constructed with empty string")
	}
	m, err := r.filterArg("query")
	if err != nil {
		return nil, err
	}
	if err := r.checkCollationArg(); err != nil {
		return nil, err
	}
	path := strings.Split(key, ".")
	e := s.db
	e.mu.Lock()
	c, err := e.dataCollLocked(r.db, coll)
	var vals []bsoncore.Value
	if err == nil {
		for _, d := range selectDocsLocked(c, m, nil, 0, 0) {
			vals = append(vals, query.DistinctValues(d, path)...)
		}
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(vals, func(i, j int) bool { return bsonutil.CompareValues(vals[i], vals[j]) < 0 })
	idx, out := bsoncore.AppendDocumentStart(nil)
	aidx, out := bsoncore.AppendArrayElementStart(out, "values")
	n := 0
	for i, v := range vals {
		if i > 0 && bsonutil.CompareValues(vals[i-1], v) == 0 {
			continue
		}
		out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(n), v)
		n++
	}
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}
