package engine

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// writeUpdateLocked stores an updated document and logs its change; a
// unique index the new document would violate fails it.
func (e *Engine) writeUpdateLocked(c *collection, k string, old bsoncore.Document, out query.Outcome) error {
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
func (e *Engine) insertUpsertLocked(db, coll string, d bsoncore.Document) error {
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

// UpdateStmt is one parsed statement of an update command.
type UpdateStmt struct {
	Query  bsoncore.Document // the filter as sent: an upsert starts from it
	Filter query.Matcher
	Update *query.Update
	Sort   []query.SortKey
	Upsert bool
	Multi  bool
	// Err, when set, is the statement's own error (it did not parse),
	// reported as a write error in its turn.
	Err error
}

// UpdateResult counts what an update command did.
type UpdateResult struct {
	N, NModified int
	Upserted     []Upserted
}

// Upserted is a document an update statement inserted.
type Upserted struct {
	Index int
	ID    bsoncore.Value
}

// Update runs the statements against db.coll and logs an update or
// replace event for every document changed (an insert for an upsert);
// ordered stops at the first failing statement.
func (e *Engine) Update(db, coll string, stmts []UpdateStmt, ordered bool) (UpdateResult, []WriteError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var res UpdateResult
	var werrs []WriteError
	for i, st := range stmts {
		n, nModified, id, err := e.updateStmtLocked(db, coll, st)
		if err != nil {
			werrs = append(werrs, WriteError{i, codes.As(err)})
			if ordered {
				break
			}
			continue
		}
		res.N += n
		res.NModified += nModified
		if id.Type != 0 {
			res.Upserted = append(res.Upserted, Upserted{i, id})
		}
	}
	return res, werrs
}

func (e *Engine) updateStmtLocked(db, coll string, st UpdateStmt) (n, nModified int, upsertedID bsoncore.Value, err error) {
	if st.Err != nil {
		return 0, 0, upsertedID, st.Err
	}
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return 0, 0, upsertedID, err
	}
	limit := int64(1)
	if st.Multi {
		limit = 0
	}
	docs := selectDocsLocked(c, st.Filter, st.Sort, 0, limit)
	for _, old := range docs {
		out, err := st.Update.Apply(old, query.NewUpdateContext(st.Update, st.Filter, old, e.clock))
		if err != nil {
			return 0, 0, upsertedID, err
		}
		n++
		if out.Op == "" {
			continue
		}
		k, _ := bsonutil.DocKey(old)
		if err := e.writeUpdateLocked(c, k, old, out); err != nil {
			return 0, 0, upsertedID, err
		}
		nModified++
	}
	if len(docs) == 0 && st.Upsert {
		d, err := st.Update.UpsertDoc(st.Query, query.NewUpdateContext(st.Update, st.Filter, nil, e.clock))
		if err != nil {
			return 0, 0, upsertedID, err
		}
		if err := e.insertUpsertLocked(db, coll, d); err != nil {
			return 0, 0, upsertedID, err
		}
		return 1, nModified, d.Lookup("_id"), nil
	}
	return n, nModified, upsertedID, nil
}

// FindAndModifyStmt is a parsed findAndModify: the first document Filter
// matches in Sort order is removed (Remove) or updated (Update); with
// Upsert, a document is inserted when none matches.
type FindAndModifyStmt struct {
	Query  bsoncore.Document // the filter as sent: an upsert starts from it
	Filter query.Matcher
	Sort   []query.SortKey
	Remove bool
	Upsert bool
	Update *query.Update // nil with Remove
}

// FindAndModifyResult is what findAndModify did: Old is the document
// found (nil when none), New the document after the update or the
// upserted one, UpsertedID the _id of an upserted document.
type FindAndModifyResult struct {
	Old, New   bsoncore.Document
	UpsertedID bsoncore.Value
}

// FindAndModify runs fm against db.coll and logs the change it made.
func (e *Engine) FindAndModify(db, coll string, fm FindAndModifyStmt) (FindAndModifyResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var res FindAndModifyResult
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return res, err
	}
	docs := selectDocsLocked(c, fm.Filter, fm.Sort, 0, 1)
	if len(docs) == 0 {
		if !fm.Upsert {
			return res, nil
		}
		d, err := fm.Update.UpsertDoc(fm.Query, query.NewUpdateContext(fm.Update, fm.Filter, nil, e.clock))
		if err != nil {
			return res, err
		}
		if err := ValidCollName(db, coll); err != nil {
			return res, err
		}
		if err := e.insertUpsertLocked(db, coll, d); err != nil {
			return res, err
		}
		res.New, res.UpsertedID = d, d.Lookup("_id")
		return res, nil
	}
	res.Old = docs[0]
	k, _ := bsonutil.DocKey(res.Old)
	if fm.Remove {
		e.deleteDocLocked(c, k, res.Old)
		return res, nil
	}
	out, err := fm.Update.Apply(res.Old, query.NewUpdateContext(fm.Update, fm.Filter, res.Old, e.clock))
	if err != nil {
		return res, err
	}
	if out.Op != "" {
		if err := e.writeUpdateLocked(c, k, res.Old, out); err != nil {
			return res, err
		}
	}
	res.New = out.NewDoc
	return res, nil
}
