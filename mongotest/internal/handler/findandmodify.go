package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// findAndModifyFields are the fields findAndModify accepts besides the
// generic arguments.
var findAndModifyFields = map[string]bool{
	"findAndModify": true, "findandmodify": true, "query": true, "sort": true, "remove": true, "update": true,
	"new": true, "fields": true, "upsert": true, "arrayFilters": true, "bypassDocumentValidation": true,
	"collation": true, "hint": true, "comment": true, "maxTimeMS": true, "writeConcern": true,
	"$db": true, "lsid": true, "txnNumber": true, "$clusterTime": true, "$readPreference": true,
	"apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true, "autocommit": true,
	"startTransaction": true, "backpressure": true, "readConcern": true, "rawData": true,
}

func handleFindAndModify(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	elems, _ := r.cmd.Elements()
	for _, el := range elems {
		if !findAndModifyFields[el.Key()] {
			return nil, codes.Errorf(codes.Location40415, "BSON field 'findAndModify.%s' is an unknown field.", el.Key())
		}
	}
	qs, err := r.parseQuery("query", "fields")
	if err != nil {
		return nil, err
	}
	q, m := qs.filter, qs.m
	remove, _ := r.arg("remove").BooleanOK()
	returnNew, _ := r.arg("new").BooleanOK()
	upsert, _ := r.arg("upsert").BooleanOK()
	u := r.arg("update")
	switch {
	case remove && u.Type != 0:
		return nil, codes.Errorf(codes.FailedToParse, "Cannot specify both an update and remove=true")
	case !remove && u.Type == 0:
		return nil, codes.Errorf(codes.FailedToParse, "Either an update or remove=true must be specified")
	case remove && returnNew:
		return nil, codes.Errorf(codes.FailedToParse, "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document")
	case remove && upsert:
		return nil, codes.Errorf(codes.FailedToParse, "Cannot specify both upsert=true and remove=true")
	}
	var spec *query.Update
	if !remove {
		if spec, err = query.CompileUpdate(u, r.arg("arrayFilters")); err != nil {
			return nil, err
		}
	}

	res, err := e.FindAndModify(r.db, coll, engine.FindAndModifyStmt{
		Query: q, Filter: m, Sort: qs.keys, Remove: remove, Upsert: upsert, Update: spec,
	})
	if err != nil {
		return nil, err
	}
	// reply answers with the projected document d as value (nil: null).
	reply := func(leo bson.D, d bsoncore.Document) (bsoncore.Document, error) {
		var v any
		if d != nil {
			if qs.proj != nil {
				var err error
				if d, err = qs.proj.Apply(d); err != nil {
					return nil, err
				}
			}
			v = bson.Raw(d)
		}
		return marshal(bson.D{{Key: "lastErrorObject", Value: leo}, {Key: "value", Value: v}})
	}
	switch {
	case res.Old == nil && res.New == nil:
		leo := bson.D{{Key: "n", Value: int32(0)}}
		if !remove {
			leo = append(leo, bson.E{Key: "updatedExisting", Value: false})
		}
		return reply(leo, nil)
	case res.Old == nil:
		id := res.UpsertedID
		leo := bson.D{
			{Key: "n", Value: int32(1)},
			{Key: "updatedExisting", Value: false},
			{Key: "upserted", Value: bson.RawValue{Type: bson.Type(id.Type), Value: id.Data}},
		}
		if returnNew {
			return reply(leo, res.New)
		}
		return reply(leo, nil)
	case remove:
		return reply(bson.D{{Key: "n", Value: int32(1)}}, res.Old)
	}
	leo := bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: true}}
	if returnNew {
		return reply(leo, res.New)
	}
	return reply(leo, res.Old)
}
