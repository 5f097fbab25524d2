package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// parseChangeStream reads a change-stream aggregate: first is its
// $changeStream stage and rest the stages after it. It returns what the
// stream watches and where it starts, and the first batch's size.
func parseChangeStream(r *request, first bsoncore.Document, rest []bsoncore.Value) (engine.StreamSpec, int64, error) {
	var none engine.StreamSpec
	var ok bool
	batchSize := int64(101)
	if cv := r.arg("cursor"); cv.Type != 0 {
		cd, ok := cv.DocumentOK()
		if !ok {
			return none, 0, codes.Errorf(codes.TypeMismatch, "cursor field must be an object")
		}
		if bv := cd.Lookup("batchSize"); bv.Type != 0 {
			n, ok := bsonutil.AsInt64(bv)
			if !ok || n < 0 {
				return none, 0, codes.Errorf(codes.BadValue, "cursor.batchSize must be a non-negative number")
			}
			batchSize = n
		}
	} else if r.arg("explain").Type == 0 {
		return none, 0, codes.Errorf(codes.FailedToParse, "The 'cursor' option is required, except for aggregate with the explain argument")
	}

	if err := checkChangeStreamReadConcern(r); err != nil {
		return none, 0, err
	}
	spec := engine.StreamSpec{DB: r.db, FullDocument: "default", FullDocumentBeforeChange: "off", Session: r.session()}
	csOpts, _ := first.Lookup("$changeStream").DocumentOK()
	if csOpts == nil {
		return none, 0, codes.Errorf(codes.FailedToParse, "the $changeStream stage specification must be an object")
	}
	target := r.arg(r.name)
	allForCluster := false
	if v := csOpts.Lookup("allChangesForCluster"); v.Type != 0 {
		allForCluster, ok = v.BooleanOK()
		if !ok {
			return none, 0, codes.Errorf(codes.TypeMismatch, "BSON field '$changeStream.allChangesForCluster' is the wrong type '%s', expected type 'bool'", v.Type)
		}
	}
	switch {
	case target.Type == bsoncore.TypeString:
		spec.Scope = engine.ScopeCollection
		spec.Coll = target.StringValue()
		if allForCluster {
			return none, 0, codes.Errorf(codes.InvalidOptions, "A change stream with 'allChangesForCluster: true' must be run against the 'admin' database with {aggregate: 1}")
		}
	case isNumberOne(target):
		if allForCluster {
			if r.db != "admin" {
				return none, 0, codes.Errorf(codes.InvalidOptions, "A change stream with 'allChangesForCluster: true' may only be opened on the 'admin' database")
			}
			spec.Scope = engine.ScopeCluster
		} else {
			if r.db == "admin" {
				return none, 0, codes.Errorf(codes.InvalidNamespace, "$changeStream may not be opened on the internal admin database")
			}
			spec.Scope = engine.ScopeDatabase
		}
	default:
		return none, 0, codes.Errorf(codes.FailedToParse, "aggregate field must be a collection name or 1")
	}
	if spec.Scope != engine.ScopeCluster && engine.IsInternalDB(r.db) {
		return none, 0, codes.Errorf(codes.InvalidNamespace, "$changeStream may not be opened on the internal %s database", r.db)
	}

	elems, _ := csOpts.Elements()
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		switch k {
		case "fullDocument":
			str, ok := v.StringValueOK()
			if !ok || !oneOf(str, "default", "updateLookup", "whenAvailable", "required") {
				return none, 0, codes.Errorf(codes.BadValue, "'%s' is not a valid value for $changeStream.fullDocument: expected default, updateLookup, whenAvailable or required", v)
			}
			spec.FullDocument = str
		case "fullDocumentBeforeChange":
			str, ok := v.StringValueOK()
			if !ok || !oneOf(str, "off", "whenAvailable", "required") {
				return none, 0, codes.Errorf(codes.BadValue, "'%s' is not a valid value for $changeStream.fullDocumentBeforeChange: expected off, whenAvailable or required", v)
			}
			spec.FullDocumentBeforeChange = str
		case "showExpandedEvents":
			b, ok := v.BooleanOK()
			if !ok {
				return none, 0, codes.Errorf(codes.TypeMismatch, "BSON field '$changeStream.showExpandedEvents' is the wrong type '%s', expected type 'bool'", v.Type)
			}
			spec.ShowExpanded = b
		case "allChangesForCluster":
		case "resumeAfter", "startAfter":
			if spec.Start != "" {
				return none, 0, codes.Errorf(codes.Location40674, "Only one type of resume option is allowed, but multiple were found.")
			}
			t, err := engine.ParseToken(v)
			if err != nil {
				return none, 0, err
			}
			spec.Token, spec.Start = t, k
		case "startAtOperationTime":
			if spec.Start != "" {
				return none, 0, codes.Errorf(codes.Location40674, "Only one type of resume option is allowed, but multiple were found.")
			}
			t, i, ok := v.TimestampOK()
			if !ok {
				return none, 0, codes.Errorf(codes.TypeMismatch, "BSON field '$changeStream.startAtOperationTime' is the wrong type '%s', expected type 'timestamp'", v.Type)
			}
			spec.StartAtOperationTime, spec.Start = bson.Timestamp{T: t, I: i}, k
		case "showSystemEvents", "showRawUpdateDescription":
			if b, ok := v.BooleanOK(); !ok || b {
				return none, 0, codes.Errorf(codes.NotImplemented, "mongotest does not support $changeStream.%s", k)
			}
		default:
			return none, 0, codes.Errorf(codes.Location40415, "BSON field '$changeStream.%s' is an unknown field.", k)
		}
	}

	for i, sv := range rest {
		sd, ok := sv.DocumentOK()
		if !ok {
			return none, 0, codes.Errorf(codes.TypeMismatch, "Each element of the 'pipeline' array must be an object")
		}
		sname, _ := bsonutil.FirstKey(sd)
		if sname == "$changeStreamSplitLargeEvent" {
			if i != len(rest)-1 {
				return none, 0, codes.Errorf(codes.Location7182802, "$changeStreamSplitLargeEvent can only appear at the end of the pipeline")
			}
			spec.Split = true
			continue
		}
		st, err := query.CompileStage(sd)
		if err != nil {
			return none, 0, err
		}
		spec.Stages = append(spec.Stages, st)
	}

	return spec, batchSize, nil
}

func isNumberOne(v bsoncore.Value) bool {
	n, ok := bsonutil.AsInt64(v)
	return ok && n == 1
}

func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if s == o {
			return true
		}
	}
	return false
}
