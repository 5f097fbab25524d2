package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// handleAggregate routes an aggregate: a pipeline that starts with
// $changeStream opens a change stream (changestream.go); any other one
// runs over a collection's documents.
func handleAggregate(e *engine.Engine, r *request) (bsoncore.Document, error) {
	pipeline, ok := r.arg("pipeline").ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "'pipeline' option must be specified as an array")
	}
	stages, err := pipeline.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "pipeline: %v", err)
	}
	if len(stages) > 0 {
		first, ok := stages[0].DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "Each element of the 'pipeline' array must be an object")
		}
		if name, _ := bsonutil.FirstKey(first); name == "$changeStream" {
			spec, batchSize, err := parseChangeStream(r, first, stages[1:])
			if err != nil {
				return nil, err
			}
			out, err := e.OpenChangeStream(spec, r.startReply(), int(batchSize))
			if err != nil {
				return nil, err
			}
			return r.finishReply(out)
		}
	}
	return handleCollectionAggregate(e, r)
}

// handleCollectionAggregate runs a pipeline over a collection's documents
// and returns the result through a cursor, as find does.
func handleCollectionAggregate(e *engine.Engine, r *request) (bsoncore.Document, error) {
	target := r.arg(r.name)
	coll, ok := target.StringValueOK()
	if !ok {
		if isNumberOne(target) {
			return nil, codes.Errorf(codes.NotImplemented, "mongotest supports only $changeStream in a database aggregation ({aggregate: 1})")
		}
		return nil, codes.Errorf(codes.FailedToParse, "aggregate field must be a collection name or 1")
	}
	if err := engine.ValidCollName(r.db, coll); err != nil {
		return nil, err
	}
	for _, key := range []string{"explain"} {
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
	pipeline, write, err := splitWriteStage(r, r.arg("pipeline").Array())
	if err != nil {
		return nil, err
	}
	stages, err := query.CompileCollPipeline(pipeline)
	if err != nil {
		return nil, err
	}
	docs, err := e.Aggregate(r.db, coll, stages)
	if err != nil {
		return nil, err
	}
	if write != nil {
		if err := write.write(e, docs); err != nil {
			return nil, err
		}
		return engine.CursorReply(0, r.db+"."+coll, "firstBatch", nil), nil
	}
	return e.OpenDocCursor(r.db, coll, r.session(), docs, batchSize, false), nil
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
