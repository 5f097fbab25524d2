package handler

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func handleCreateIndexes(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	raw, err := r.docsArg("indexes")
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, codes.Errorf(codes.BadValue, "Must specify at least one index to create")
	}
	specs := make([]engine.IndexSpec, len(raw))
	for i, d := range raw {
		if specs[i], err = engine.NormalizeIndexSpec(d); err != nil {
			return nil, err
		}
		if specs[i].Name() == "_id_" || strings.HasPrefix(specs[i].Name(), "$") {
			if specs[i].Name() != "_id_" {
				return nil, codes.Errorf(codes.CannotCreateIndex, "index name cannot start with '$'")
			}
		}
	}
	res, err := e.CreateIndexes(r.db, coll, specs)
	if err != nil {
		return nil, err
	}
	reply := bson.D{
		{Key: "numIndexesBefore", Value: int32(res.Before)},
		{Key: "numIndexesAfter", Value: int32(res.After)},
		{Key: "createdCollectionAutomatically", Value: res.CreatedCollection},
	}
	if res.None {
		reply = append(reply, bson.E{Key: "note", Value: "all indexes already exist"})
	}
	return marshal(reply)
}

func handleDropIndexes(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	was, err := e.DropIndexes(r.db, coll, r.arg("index"))
	if err != nil {
		return nil, err
	}
	return marshal(bson.D{{Key: "nIndexesWas", Value: int32(was)}})
}

func handleListIndexes(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	docs, err := e.Indexes(r.db, coll)
	if err != nil {
		return nil, err
	}
	return engine.CursorReply(0, r.db+".$cmd.listIndexes."+coll, "firstBatch", docs), nil
}
