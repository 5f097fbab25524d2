package handler

import (
	"sort"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// findOptions are the options of find that decide which documents come
// back and how.
var findIgnored = map[string]bool{
	"find": true, "filter": true, "sort": true, "projection": true, "skip": true, "limit": true,
	"batchSize": true, "singleBatch": true, "hint": true, "comment": true, "maxTimeMS": true,
	"readConcern": true, "allowDiskUse": true, "noCursorTimeout": true, "allowPartialResults": true,
	"let": true, "collation": true, "$db": true, "lsid": true, "$clusterTime": true,
	"$readPreference": true, "txnNumber": true, "apiVersion": true, "apiStrict": true,
	"apiDeprecationErrors": true, "readPreference": true, "backpressure": true, "maxScan": true,
	"startTransaction": true, "autocommit": true, "rawData": true,
}

// querySpec is what find and findAndModify read alike: the filter, the
// sort and the projection.
type querySpec struct {
	filter bsoncore.Document // the filter as sent; empty when absent
	m      query.Matcher
	keys   []query.SortKey
	proj   *query.Projection // nil: whole documents
}

// parseQuery reads the filter (argument filterKey), sort, projection
// (argument projKey) and collation of a find-like command.
func (r *request) parseQuery(filterKey, projKey string) (querySpec, error) {
	var q querySpec
	var err error
	if q.filter, err = r.optDoc(filterKey); err != nil {
		return q, err
	}
	if q.filter == nil {
		q.filter = query.EmptyDoc
	}
	if q.m, err = query.CompileFilter(q.filter); err != nil {
		return q, err
	}
	if sd, err := r.optDoc("sort"); err != nil {
		return q, err
	} else if sd != nil {
		if q.keys, err = query.ParseSort(sd); err != nil {
			return q, err
		}
	}
	if pd, err := r.optDoc(projKey); err != nil {
		return q, err
	} else if len(pd) > 5 {
		if q.proj, err = query.CompileFindProjection(pd); err != nil {
			return q, err
		}
	}
	return q, r.checkCollationArg()
}

// project returns the projected copies of docs (docs itself without a
// projection).
func (q querySpec) project(docs []bsoncore.Document) ([]bsoncore.Document, error) {
	if q.proj == nil {
		return docs, nil
	}
	out := make([]bsoncore.Document, len(docs))
	for i, d := range docs {
		var err error
		if out[i], err = q.proj.Apply(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func handleFind(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	elems, _ := r.cmd.Elements()
	for _, el := range elems {
		if !findIgnored[el.Key()] {
			switch el.Key() {
			case "min", "max", "returnKey", "showRecordId", "tailable", "awaitData", "oplogReplay":
				if b, ok := el.Value().BooleanOK(); ok && !b {
					continue
				}
				return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support find with %s", el.Key())
			}
			return nil, codes.Errorf(codes.Location40415, "BSON field 'find.%s' is an unknown field.", el.Key())
		}
	}
	q, err := r.parseQuery("filter", "projection")
	if err != nil {
		return nil, err
	}
	limit, skip, batchSize := int64(0), int64(0), int64(101)
	single, _ := r.arg("singleBatch").BooleanOK()
	for _, o := range []struct {
		key string
		dst *int64
	}{{"limit", &limit}, {"skip", &skip}, {"batchSize", &batchSize}} {
		v := r.arg(o.key)
		if v.Type == 0 {
			continue
		}
		n, ok := bsonutil.AsInt64(v)
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'find.%s' is the wrong type '%s', expected a number", o.key, bsonutil.TypeName(v.Type))
		}
		if n < 0 {
			if o.key == "limit" {
				// A negative limit is the legacy single-batch form.
				n, single = -n, true
			} else {
				return nil, codes.Errorf(codes.BadValue, "%s value must be non-negative, but received: %d", o.key, n)
			}
		}
		*o.dst = n
	}
	found, err := e.Find(r.db, coll, q.m, q.keys, skip, limit)
	if err != nil {
		return nil, err
	}
	docs, err := q.project(found)
	if err != nil {
		return nil, err
	}
	return e.OpenDocCursor(r.db, coll, r.session(), docs, batchSize, single), nil
}

func handleCount(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	m, err := r.filterArg("query")
	if err != nil {
		return nil, err
	}
	limit, _ := bsonutil.AsInt64(r.arg("limit"))
	if limit < 0 {
		limit = -limit
	}
	skip, _ := bsonutil.AsInt64(r.arg("skip"))
	if skip < 0 {
		return nil, codes.Errorf(codes.BadValue, "skip value is negative in count query")
	}
	docs, err := e.Find(r.db, coll, m, nil, skip, limit)
	if err != nil {
		return nil, err
	}
	n := len(docs)
	return marshal(bson.D{{Key: "n", Value: int32(n)}})
}

// handleDistinct is {distinct: coll, key: "a.b", query?}: the distinct
// values the key reaches in the matching documents, an array's elements
// each counting as a value, in BSON order.
func handleDistinct(e *engine.Engine, r *request) (bsoncore.Document, error) {
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
	docs, err := e.Find(r.db, coll, m, nil, 0, 0)
	if err != nil {
		return nil, err
	}
	var vals []bsoncore.Value
	for _, d := range docs {
		vals = append(vals, query.DistinctValues(d, path)...)
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
