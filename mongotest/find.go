package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"sort"

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

// optDoc reads an optional document argument.
func (r *request) optDoc(key string) (bsoncore.Document, error) {
	v := r.arg(key)
	if v.Type == 0 || v.Type == bsoncore.TypeNull {
		return nil, nil
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'object'", r.name, key, bsonutil.TypeName(v.Type))
	}
	return d, nil
}

// filterArg compiles the optional query filter argument key; everything
// matches when it is absent.
func (r *request) filterArg(key string) (query.Matcher, error) {
	q, err := r.optDoc(key)
	if err != nil || q == nil {
		return query.MatchAll(nil), err
	}
	return query.CompileFilter(q)
}

// checkCollationArg checks the optional collation argument.
func (r *request) checkCollationArg() error {
	cd, err := r.optDoc("collation")
	if err != nil {
		return err
	}
	return query.CheckCollation(cd)
}

// selectDocsLocked returns the documents of c that match m, sorted by keys
// when given (stable: insertion order otherwise), after skip, at most
// limit (0: all).
func selectDocsLocked(c *collection, m query.Matcher, keys []query.SortKey, skip, limit int64) []bsoncore.Document {
	if c == nil {
		return nil
	}
	var docs []bsoncore.Document
	early := len(keys) == 0
	c.each(func(_ string, d bsoncore.Document) bool {
		if m.Matches(d) {
			docs = append(docs, d)
		}
		return !early || limit == 0 || int64(len(docs)) < skip+limit
	})
	if len(keys) > 0 {
		sort.SliceStable(docs, func(i, j int) bool { return query.CompareBySort(docs[i], docs[j], keys) < 0 })
	}
	if skip > 0 {
		if skip >= int64(len(docs)) {
			return nil
		}
		docs = docs[skip:]
	}
	if limit > 0 && int64(len(docs)) > limit {
		docs = docs[:limit]
	}
	return docs
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

func handleFind(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	elems, _ := r.Cmd.Elements()
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
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	docs, err := q.project(selectDocsLocked(c, q.m, q.keys, skip, limit))
	if err != nil {
		return nil, err
	}
	return e.openDocCursorLocked(r, coll, docs, batchSize, single), nil
}

// openDocCursorLocked answers a find or an aggregate with docs: the first
// batchSize of them (0: none) in the reply, the rest kept in a cursor for
// getMore, unless single asks for one batch only.
func (e *engine) openDocCursorLocked(r *request, coll string, docs []bsoncore.Document, batchSize int64, single bool) bsoncore.Document {
	cur := &cursor{ns: r.db + "." + coll, db: r.db, coll: coll, connID: r.c.id}
	first := docs
	if batchSize > 0 && int64(len(docs)) > batchSize {
		first, cur.docs = docs[:batchSize], docs[batchSize:]
	} else if batchSize == 0 && !single {
		first, cur.docs = nil, docs
	}
	if len(cur.docs) > 0 && !single {
		e.registerCursorLocked(cur)
	} else {
		cur.docs = nil
	}
	return e.cursorReplyLocked(cur, "firstBatch", batch{events: first})
}

func handleCount(s *Server, r *request) (bsoncore.Document, error) {
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
	e := s.db
	e.mu.Lock()
	c, err := e.dataCollLocked(r.db, coll)
	n := len(selectDocsLocked(c, m, nil, skip, limit))
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return marshal(bson.D{{Key: "n", Value: int32(n)}})
}
