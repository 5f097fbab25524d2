package mongotest

import "go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
)

// routesToCollectionAggregate tells handleAggregate whether r is a
// collection aggregation: a pipeline that is empty or whose first stage is
// not $changeStream. A malformed pipeline stays with handleAggregate,
// which reports it.
func routesToCollectionAggregate(r *request) bool {
	arr, ok := r.arg("pipeline").ArrayOK()
	if !ok {
		return false
	}
	vals, err := arr.Values()
	if err != nil {
		return false
	}
	if len(vals) == 0 {
		return true
	}
	first, ok := vals[0].DocumentOK()
	if !ok {
		return false
	}
	name, _ := bsonutil.FirstKey(first)
	return name != "$changeStream"
}

// handleCollectionAggregate runs a pipeline over a collection's documents
// and returns the result through a cursor, as find does.
func handleCollectionAggregate(s *Server, r *request) (bsoncore.Document, error) {
	target := r.arg(r.name)
	coll, ok := target.StringValueOK()
	if !ok {
		if isNumberOne(target) {
			return nil, codes.Errorf(codes.NotImplemented, "mongotest supports only $changeStream in a database aggregation ({aggregate: 1})")
		}
		return nil, codes.Errorf(codes.FailedToParse, "aggregate field must be a collection name or 1")
	}
	if err := validCollName(r.db, coll); err != nil {
		return nil, err
	}
	for _, key := range []string{"explain", "let"} {
		if r.arg(key).Type != 0 {
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support aggregate with %s", key)
		}
	}
	if err := r.checkCollationArg(); err != nil {
		return nil, err
	}
	batchSize, err := aggregateBatchSize(r)
	if err != nil {
		return nil, err
	}
	stages, err := query.CompileCollPipeline(r.arg("pipeline").Array())
	if err != nil {
		return nil, err
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	docs := selectDocsLocked(c, query.MatchAll(nil), nil, 0, 0)
	for _, st := range stages {
		if docs, err = st.Run(docs); err != nil {
			return nil, err
		}
	}
	return e.openDocCursorLocked(r, coll, docs, batchSize, false), nil
}

// aggregateBatchSize reads cursor.batchSize (default 101); the cursor
// option itself is required.
func aggregateBatchSize(r *request) (int64, error) {
	cv := r.arg("cursor")
	if cv.Type == 0 {
		return 0, codes.Errorf(codes.FailedToParse, "The 'cursor' option is required, except for aggregate with the explain argument")
	}
	cd, ok := cv.DocumentOK()
	if !ok {
		return 0, codes.Errorf(codes.TypeMismatch, "cursor field must be an object")
	}
	bv := cd.Lookup("batchSize")
	if bv.Type == 0 {
		return 101, nil
	}
	n, ok := bsonutil.AsInt64(bv)
	if !ok || n < 0 {
		return 0, codes.Errorf(codes.BadValue, "cursor.batchSize must be a non-negative number")
	}
	return n, nil
}
