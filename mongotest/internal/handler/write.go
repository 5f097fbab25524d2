package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// writeReply is the reply of a write command: {n, <extra>, writeErrors}.
func writeReply(n int, extra bson.D, werrs []engine.WriteError) (bsoncore.Document, error) {
	d := bson.D{{Key: "n", Value: int32(n)}}
	d = append(d, extra...)
	if len(werrs) > 0 {
		arr := make(bson.A, len(werrs))
		for i, we := range werrs {
			arr[i] = bson.D{
				{Key: "index", Value: int32(we.Index)},
				{Key: "code", Value: we.Err.Code},
				{Key: "codeName", Value: we.Err.Name()},
				{Key: "errmsg", Value: we.Err.Message},
			}
		}
		d = append(d, bson.E{Key: "writeErrors", Value: arr})
	}
	return marshal(d)
}

func handleInsert(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	docs, err := r.docsArg("documents")
	if err != nil {
		return nil, err
	}
	n, werrs, err := e.Insert(r.db, coll, docs, r.ordered())
	if err != nil {
		return nil, err
	}
	return writeReply(n, nil, werrs)
}

func handleDelete(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	docs, err := r.docsArg("deletes")
	if err != nil {
		return nil, err
	}
	stmts := make([]engine.DeleteStmt, len(docs))
	for i, st := range docs {
		q, ok := st.Lookup("q").DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.FailedToParse, "BSON field 'delete.deletes.q' is missing but a required field")
		}
		stmts[i].Limit, _ = bsonutil.AsInt64(st.Lookup("limit"))
		if cd, ok := st.Lookup("collation").DocumentOK(); ok {
			// A collation changes which documents match: refuse one
			// mongotest does not implement rather than ignore it.
			if stmts[i].Err = query.CheckCollation(cd); stmts[i].Err != nil {
				continue
			}
		}
		stmts[i].Filter, stmts[i].Err = query.CompileFilter(q)
	}
	n, werrs, err := e.Delete(r.db, coll, stmts, r.ordered())
	if err != nil {
		return nil, err
	}
	return writeReply(n, nil, werrs)
}

// updateStmtFields are the fields an update statement may carry.
var updateStmtFields = map[string]bool{
	"q": true, "u": true, "upsert": true, "multi": true, "arrayFilters": true, "hint": true,
	"collation": true, "c": true, "sort": true, "upsertSupplied": true,
}

func handleUpdate(e *engine.Engine, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	docs, err := r.docsArg("updates")
	if err != nil {
		return nil, err
	}
	if err := engine.ValidCollName(r.db, coll); err != nil {
		return nil, err
	}
	stmts := make([]engine.UpdateStmt, len(docs))
	for i, d := range docs {
		stmts[i] = parseUpdateStmt(d)
	}
	res, werrs := e.Update(r.db, coll, stmts, r.ordered())
	extra := bson.D{{Key: "nModified", Value: int32(res.NModified)}}
	if len(res.Upserted) > 0 {
		upserted := make(bson.A, len(res.Upserted))
		for i, u := range res.Upserted {
			upserted[i] = bson.D{{Key: "index", Value: int32(u.Index)}, {Key: "_id", Value: bson.RawValue{Type: bson.Type(u.ID.Type), Value: u.ID.Data}}}
		}
		extra = append(extra, bson.E{Key: "upserted", Value: upserted})
	}
	return writeReply(res.N, extra, werrs)
}

// parseUpdateStmt reads one statement of an update command; an error is
// the statement's own (st.Err), reported as a write error in its turn.
func parseUpdateStmt(st bsoncore.Document) engine.UpdateStmt {
	var out engine.UpdateStmt
	fail := func(err error) engine.UpdateStmt { return engine.UpdateStmt{Err: err} }
	elems, _ := st.Elements()
	for _, el := range elems {
		if !updateStmtFields[el.Key()] {
			return fail(codes.Errorf(codes.Location40415, "BSON field 'update.updates.%s' is an unknown field.", el.Key()))
		}
	}
	q, ok := st.Lookup("q").DocumentOK()
	if !ok {
		return fail(codes.Errorf(codes.FailedToParse, "BSON field 'update.updates.q' is missing but a required field"))
	}
	u := st.Lookup("u")
	if u.Type == 0 {
		return fail(codes.Errorf(codes.FailedToParse, "BSON field 'update.updates.u' is missing but a required field"))
	}
	out.Query = q
	out.Upsert, _ = st.Lookup("upsert").BooleanOK()
	out.Multi, _ = st.Lookup("multi").BooleanOK()
	if cd, ok := st.Lookup("collation").DocumentOK(); ok {
		if err := query.CheckCollation(cd); err != nil {
			return fail(err)
		}
	}
	if st.Lookup("c").Type != 0 {
		return fail(codes.Errorf(codes.NotImplemented, "mongotest does not support update with let variables (c)"))
	}
	var err error
	if out.Update, err = query.CompileUpdate(u, st.Lookup("arrayFilters")); err != nil {
		return fail(err)
	}
	if out.Multi && out.Update.Replacement != nil {
		return fail(codes.Errorf(codes.FailedToParse, "multi update is not supported for replacement-style update"))
	}
	if sd, ok := st.Lookup("sort").DocumentOK(); ok {
		if out.Multi {
			return fail(codes.Errorf(codes.FailedToParse, "Cannot specify sort with multi=true"))
		}
		if out.Sort, err = query.ParseSort(sd); err != nil {
			return fail(err)
		}
	}
	if out.Filter, err = query.CompileFilter(q); err != nil {
		return fail(err)
	}
	return out
}
