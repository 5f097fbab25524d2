package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// handleBulkWrite is the client-level bulkWrite of MongoDB 8.0, run on
// admin:
//
//	{bulkWrite: 1, ops: [{insert: i, document} | {update: i, filter,
//	 updateMods, multi, upsert, arrayFilters, sort} | {delete: i, filter,
//	 multi}], nsInfo: [{ns: "db.coll"}], ordered, errorsOnly}
//
// where i indexes nsInfo. Each operation runs as the insert, update or
// delete command would; the reply counts them and returns one result per
// operation (only the errors with errorsOnly) in a single-batch cursor.
func handleBulkWrite(e *engine.Engine, r *request) (bsoncore.Document, error) {
	if r.db != "admin" {
		return nil, codes.Errorf(codes.Unauthorized, "bulkWrite may only be run against the admin database.")
	}
	// bypassDocumentValidation needs nothing: mongotest has no validators
	// (collMod refuses them); let was applied by Serve.
	ops, err := r.docsArg("ops")
	if err != nil {
		return nil, err
	}
	nsDocs, err := r.docsArg("nsInfo")
	if err != nil {
		return nil, err
	}
	type ns struct{ db, coll string }
	namespaces := make([]ns, len(nsDocs))
	for i, d := range nsDocs {
		s, _ := d.Lookup("ns").StringValueOK()
		db, coll, ok := splitNS(s)
		if !ok {
			return nil, codes.Errorf(codes.InvalidNamespace, "Invalid namespace specified '%s'", s)
		}
		namespaces[i] = ns{db, coll}
	}
	ordered := r.ordered()
	errorsOnly, _ := r.arg("errorsOnly").BooleanOK()
	var nErrors, nInserted, nMatched, nModified, nUpserted, nDeleted int32
	results := bson.A{}
	for idx, op := range ops {
		kind, _ := bsonutil.FirstKey(op)
		target, ok := bsonutil.AsInt64(op.Lookup(kind))
		if !ok || target < 0 || int(target) >= len(namespaces) {
			return nil, codes.Errorf(codes.BadValue, "BulkWrite ops entry %d has an invalid nsInfo index", idx)
		}
		nsi := namespaces[target]
		res := bson.D{{Key: "ok", Value: 1.0}, {Key: "idx", Value: int32(idx)}}
		var werr *codes.Error
		switch kind {
		case "insert":
			doc, ok := op.Lookup("document").DocumentOK()
			if !ok {
				return nil, codes.Errorf(codes.FailedToParse, "BSON field 'bulkWrite.ops.document' is missing but a required field")
			}
			n, werrs, err := e.Insert(nsi.db, nsi.coll, []bsoncore.Document{doc}, true)
			if err != nil {
				werr = codes.As(err)
			} else if len(werrs) > 0 {
				werr = werrs[0].Err
			}
			nInserted += int32(n)
			res = append(res, bson.E{Key: "n", Value: int32(n)})
		case "update":
			st := bsoncore.NewDocumentBuilder()
			if f, ok := op.Lookup("filter").DocumentOK(); ok {
				st.AppendDocument("q", f)
			}
			if u := op.Lookup("updateMods"); u.Type != 0 {
				st.AppendValue("u", u)
			}
			for _, k := range []string{"multi", "upsert", "arrayFilters", "sort", "collation", "hint"} {
				if v := op.Lookup(k); v.Type != 0 {
					st.AppendValue(k, v)
				}
			}
			stmt := parseUpdateStmt(st.Build())
			ur, werrs := e.Update(nsi.db, nsi.coll, []engine.UpdateStmt{stmt}, true)
			if len(werrs) > 0 {
				werr = werrs[0].Err
			}
			nMatched += int32(ur.N - len(ur.Upserted))
			nModified += int32(ur.NModified)
			nUpserted += int32(len(ur.Upserted))
			res = append(res, bson.E{Key: "n", Value: int32(ur.N)}, bson.E{Key: "nModified", Value: int32(ur.NModified)})
			if len(ur.Upserted) > 0 {
				id := ur.Upserted[0].ID
				res = append(res, bson.E{Key: "upserted", Value: bson.D{{Key: "_id", Value: bson.RawValue{Type: bson.Type(id.Type), Value: id.Data}}}})
			}
		case "delete":
			f, ok := op.Lookup("filter").DocumentOK()
			if !ok {
				return nil, codes.Errorf(codes.FailedToParse, "BSON field 'bulkWrite.ops.filter' is missing but a required field")
			}
			stmt := engine.DeleteStmt{Limit: 1}
			if m, _ := op.Lookup("multi").BooleanOK(); m {
				stmt.Limit = 0
			}
			if cd, ok := op.Lookup("collation").DocumentOK(); ok {
				stmt.Err = query.CheckCollation(cd)
			}
			if stmt.Err == nil {
				stmt.Filter, stmt.Err = query.CompileFilter(f)
			}
			n, werrs, err := e.Delete(nsi.db, nsi.coll, []engine.DeleteStmt{stmt}, true)
			if err != nil {
				werr = codes.As(err)
			} else if len(werrs) > 0 {
				werr = werrs[0].Err
			}
			nDeleted += int32(n)
			res = append(res, bson.E{Key: "n", Value: int32(n)})
		default:
			return nil, codes.Errorf(codes.FailedToParse, "Unrecognized bulkWrite operation %q", kind)
		}
		if werr != nil {
			nErrors++
			res = bson.D{{Key: "ok", Value: 0.0}, {Key: "idx", Value: int32(idx)}, {Key: "code", Value: werr.Code},
				{Key: "codeName", Value: werr.Name()}, {Key: "errmsg", Value: werr.Message}, {Key: "n", Value: int32(0)}}
		}
		if werr != nil || !errorsOnly {
			results = append(results, res)
		}
		if werr != nil && ordered {
			break
		}
	}
	return marshal(bson.D{
		{Key: "cursor", Value: bson.D{{Key: "id", Value: int64(0)}, {Key: "firstBatch", Value: results}, {Key: "ns", Value: "admin.$cmd.bulkWrite"}}},
		{Key: "nErrors", Value: nErrors},
		{Key: "nInserted", Value: nInserted},
		{Key: "nMatched", Value: nMatched},
		{Key: "nModified", Value: nModified},
		{Key: "nUpserted", Value: nUpserted},
		{Key: "nDeleted", Value: nDeleted},
	})
}
