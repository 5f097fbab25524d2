package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// writeUpdateLocked stores an updated document and logs its change; a
// unique index the new document would violate fails it.
func (e *engine) writeUpdateLocked(c *collection, k string, old bsoncore.Document, out query.Outcome) error {
	if ce := c.uniqueConflict(k, out.NewDoc); ce != nil {
		return ce
	}
	c.put(k, out.NewDoc)
	en := &entry{
		op: out.Op, db: c.db, coll: c.name, uuid: c.uuid,
		docKey: idKeyDoc(out.NewDoc), postImage: out.NewDoc, imagesKept: c.preAndPostImages,
	}
	if c.preAndPostImages {
		en.preImage = old
	}
	if out.Op == opUpdate {
		en.updateDesc, en.disambiguated = out.Desc.Build()
	}
	e.appendEntryLocked(en)
	return nil
}

// insertUpsertLocked inserts an upserted document, creating the collection
// when needed.
func (e *engine) insertUpsertLocked(db, coll string, d bsoncore.Document) error {
	c, err := e.ensureCollLocked(db, coll)
	if err != nil {
		return err
	}
	k, _ := bsonutil.DocKey(d)
	if _, dup := c.get(k); dup {
		return codes.Errorf(codes.DuplicateKey, "E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %s }", c.ns(), d.Lookup("_id"))
	}
	if ce := c.uniqueConflict(k, d); ce != nil {
		return ce
	}
	c.put(k, d)
	e.appendEntryLocked(&entry{op: opInsert, db: c.db, coll: c.name, uuid: c.uuid, docKey: idKeyDoc(d), postImage: d})
	return nil
}

// updateStmtFields are the fields an update statement may carry.
var updateStmtFields = map[string]bool{
	"q": true, "u": true, "upsert": true, "multi": true, "arrayFilters": true, "hint": true,
	"collation": true, "c": true, "sort": true, "upsertSupplied": true,
}

func handleUpdate(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	stmts, err := r.docsArg("updates")
	if err != nil {
		return nil, err
	}
	if err := validCollName(r.db, coll); err != nil {
		return nil, err
	}
	ordered := r.ordered()
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	n, nModified := 0, 0
	var upserted bson.A
	var werrs []writeError
	for i, st := range stmts {
		res, err := e.updateStmtLocked(r.db, coll, st)
		if err != nil {
			werrs = append(werrs, writeError{i, codes.As(err)})
			if ordered {
				break
			}
			continue
		}
		n += res.n
		nModified += res.nModified
		if res.upsertedID.Type != 0 {
			upserted = append(upserted, bson.D{{Key: "index", Value: int32(i)}, {Key: "_id", Value: bson.RawValue{Type: bson.Type(res.upsertedID.Type), Value: res.upsertedID.Data}}})
		}
	}
	extra := bson.D{{Key: "nModified", Value: int32(nModified)}}
	if len(upserted) > 0 {
		extra = append(extra, bson.E{Key: "upserted", Value: upserted})
	}
	return writeReply(n, extra, werrs)
}

type updateResult struct {
	n, nModified int
	upsertedID   bsoncore.Value
}

func (e *engine) updateStmtLocked(db, coll string, st bsoncore.Document) (updateResult, error) {
	var res updateResult
	elems, _ := st.Elements()
	for _, el := range elems {
		if !updateStmtFields[el.Key()] {
			return res, codes.Errorf(codes.Location40415, "BSON field 'update.updates.%s' is an unknown field.", el.Key())
		}
	}
	q, ok := st.Lookup("q").DocumentOK()
	if !ok {
		return res, codes.Errorf(codes.FailedToParse, "BSON field 'update.updates.q' is missing but a required field")
	}
	u := st.Lookup("u")
	if u.Type == 0 {
		return res, codes.Errorf(codes.FailedToParse, "BSON field 'update.updates.u' is missing but a required field")
	}
	upsert, _ := st.Lookup("upsert").BooleanOK()
	multi, _ := st.Lookup("multi").BooleanOK()
	if cd, ok := st.Lookup("collation").DocumentOK(); ok {
		if err := query.CheckCollation(cd); err != nil {
			return res, err
		}
	}
	if st.Lookup("c").Type != 0 {
		return res, codes.Errorf(codes.NotImplemented, "mongotest does not support update with let variables (c)")
	}
	spec, err := query.CompileUpdate(u, st.Lookup("arrayFilters"))
	if err != nil {
		return res, err
	}
	if multi && spec.Replacement != nil {
		return res, codes.Errorf(codes.FailedToParse, "multi update is not supported for replacement-style update")
	}
	var keys []query.SortKey
	if sd, ok := st.Lookup("sort").DocumentOK(); ok {
		if multi {
			return res, codes.Errorf(codes.FailedToParse, "Cannot specify sort with multi=true")
		}
		if keys, err = query.ParseSort(sd); err != nil {
			return res, err
		}
	}
	m, err := query.CompileFilter(q)
	if err != nil {
		return res, err
	}
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return res, err
	}
	limit := int64(1)
	if multi {
		limit = 0
	}
	docs := selectDocsLocked(c, m, keys, 0, limit)
	for _, old := range docs {
		out, err := spec.Apply(old, query.NewUpdateContext(spec, m, old, e.clock))
		if err != nil {
			return res, err
		}
		res.n++
		if out.Op == "" {
			continue
		}
		k, _ := bsonutil.DocKey(old)
		if err := e.writeUpdateLocked(c, k, old, out); err != nil {
			return res, err
		}
		res.nModified++
	}
	if len(docs) == 0 && upsert {
		d, err := spec.UpsertDoc(q, query.NewUpdateContext(spec, m, nil, e.clock))
		if err != nil {
			return res, err
		}
		if err := e.insertUpsertLocked(db, coll, d); err != nil {
			return res, err
		}
		res.n = 1
		res.upsertedID = d.Lookup("_id")
	}
	return res, nil
}
