package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(retryableWrite(handleFindAndModify), "findAndModify", "findandmodify")
}

// findAndModifyFields are the fields findAndModify accepts besides the
// generic arguments.
var findAndModifyFields = map[string]bool{
	"findAndModify": true, "findandmodify": true, "query": true, "sort": true, "remove": true, "update": true,
	"new": true, "fields": true, "upsert": true, "arrayFilters": true, "bypassDocumentValidation": true,
	"collation": true, "hint": true, "comment": true, "maxTimeMS": true, "writeConcern": true,
	"$db": true, "lsid": true, "txnNumber": true, "$clusterTime": true, "$readPreference": true,
	"apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true, "autocommit": true,
	"startTransaction": true, "backpressure": true,
}

func handleFindAndModify(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	elems, _ := r.Cmd.Elements()
	for _, el := range elems {
		if !findAndModifyFields[el.Key()] {
			if el.Key() == "let" {
				return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support findAndModify with let")
			}
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

	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	docs := selectDocsLocked(c, m, qs.keys, 0, 1)
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
	if len(docs) == 0 {
		if !upsert {
			leo := bson.D{{Key: "n", Value: int32(0)}}
			if !remove {
				leo = append(leo, bson.E{Key: "updatedExisting", Value: false})
			}
			return reply(leo, nil)
		}
		d, err := spec.UpsertDoc(q, query.NewUpdateContext(spec, m, nil, e.clock))
		if err != nil {
			return nil, err
		}
		if err := validCollName(r.db, coll); err != nil {
			return nil, err
		}
		if err := e.insertUpsertLocked(r.db, coll, d); err != nil {
			return nil, err
		}
		id := d.Lookup("_id")
		leo := bson.D{
			{Key: "n", Value: int32(1)},
			{Key: "updatedExisting", Value: false},
			{Key: "upserted", Value: bson.RawValue{Type: bson.Type(id.Type), Value: id.Data}},
		}
		if returnNew {
			return reply(leo, d)
		}
		return reply(leo, nil)
	}
	old := docs[0]
	k, _ := bsonutil.DocKey(old)
	if remove {
		e.deleteDocLocked(c, k, old)
		return reply(bson.D{{Key: "n", Value: int32(1)}}, old)
	}
	out, err := spec.Apply(old, query.NewUpdateContext(spec, m, old, e.clock))
	if err != nil {
		return nil, err
	}
	if out.Op != "" {
		if err := e.writeUpdateLocked(c, k, old, out); err != nil {
			return nil, err
		}
	}
	leo := bson.D{{Key: "n", Value: int32(1)}, {Key: "updatedExisting", Value: true}}
	if returnNew {
		return reply(leo, out.NewDoc)
	}
	return reply(leo, old)
}
