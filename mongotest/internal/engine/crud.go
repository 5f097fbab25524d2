package engine

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"strings"
)

// dataCollLocked returns db.name for reading or writing documents: nil
// when it does not exist, an error when it is a view (mongotest does not
// evaluate views).
func (e *Engine) dataCollLocked(db, name string) (*collection, error) {
	c := e.collLocked(db, name)
	if c != nil && c.viewOn != "" {
		return nil, codes.Errorf(codes.CommandNotSupportedOnView, "Namespace %s.%s is a view, not a collection (mongotest does not evaluate views)", db, name)
	}
	return c, nil
}

// ensureCollLocked returns db.name, creating it (and logging the create
// event) when it does not exist.
func (e *Engine) ensureCollLocked(db, name string) (*collection, error) {
	if c, err := e.dataCollLocked(db, name); c != nil || err != nil {
		return c, err
	}
	if err := ValidCollName(db, name); err != nil {
		return nil, err
	}
	c := newCollection(db, name)
	e.dbLocked(db, true).colls[name] = c
	e.appendEntryLocked(createEntry(c))
	return c, nil
}

// ValidCollName checks that db.name is a namespace a collection may have.
func ValidCollName(db, name string) error {
	if db == "" || name == "" {
		return codes.Errorf(codes.InvalidNamespace, "Invalid namespace specified '%s.%s'", db, name)
	}
	for _, ch := range name {
		if ch == '$' || ch == 0 {
			return codes.Errorf(codes.InvalidNamespace, "Invalid collection name: %s", name)
		}
	}
	return nil
}

func createEntry(c *collection) *entry {
	if c.viewOn != "" {
		return &entry{
			op: opCreate, db: c.db, coll: c.name, uuid: c.uuid, expanded: true,
			opDesc: bsoncore.NewDocumentBuilder().AppendString("viewOn", c.viewOn).AppendArray("pipeline", c.viewPipeline).Build(),
			nsType: "view",
		}
	}
	return &entry{
		op: opCreate, db: c.db, coll: c.name, uuid: c.uuid, expanded: true,
		opDesc: bsoncore.NewDocumentBuilder().AppendDocument("idIndex", c.indexes[0].spec).Build(),
		nsType: "collection",
	}
}

// withID returns d with an _id, generating an ObjectID first when absent.
func withID(d bsoncore.Document) bsoncore.Document {
	if _, err := d.LookupErr("_id"); err == nil {
		return d
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(d)+17))
	out = bsoncore.AppendObjectIDElement(out, "_id", bson.NewObjectID())
	out = append(out, d[4:len(d)-1]...)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func idKeyDoc(d bsoncore.Document) bsoncore.Document {
	id := d.Lookup("_id")
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(id.Data)+16))
	out = bsoncore.AppendValueElement(out, "_id", id)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// deleteDocLocked removes d (stored under key k) from c and logs its
// delete event.
func (e *Engine) deleteDocLocked(c *collection, k string, d bsoncore.Document) {
	c.remove(k)
	en := &entry{op: opDelete, db: c.db, coll: c.name, uuid: c.uuid, docKey: idKeyDoc(d), imagesKept: c.preAndPostImages}
	if c.preAndPostImages {
		en.preImage = d
	}
	e.appendEntryLocked(en)
}

// WriteError is one entry of a write command's writeErrors: the index of
// the statement and its error.
type WriteError struct {
	Index int
	Err   *codes.Error
}

// Insert inserts docs into db.coll, creating the collection when needed,
// and logs an insert event for each. A document that cannot be inserted
// (too large, a duplicate key) is a write error; ordered stops at the
// first. It returns how many documents were inserted.
func (e *Engine) Insert(db, coll string, docs []bsoncore.Document, ordered bool) (int, []WriteError, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.ensureCollLocked(db, coll)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var werrs []WriteError
	for i, d := range docs {
		if len(d) > bsonutil.MaxObjectSize {
			werrs = append(werrs, WriteError{i, codes.Errorf(codes.BSONObjectTooLarge, "object to insert too large. size in bytes: %d, max size: %d", len(d), bsonutil.MaxObjectSize)})
			if ordered {
				break
			}
			continue
		}
		d = withID(d)
		if err := checkIDForStorage(d.Lookup("_id")); err != nil {
			werrs = append(werrs, WriteError{i, err})
			if ordered {
				break
			}
			continue
		}
		k, _ := bsonutil.DocKey(d)
		if _, dup := c.get(k); dup {
			werrs = append(werrs, WriteError{i, codes.Errorf(codes.DuplicateKey, "E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %s }", c.ns(), d.Lookup("_id"))})
			if ordered {
				break
			}
			continue
		}
		if ce := c.uniqueConflict(k, d); ce != nil {
			werrs = append(werrs, WriteError{i, ce})
			if ordered {
				break
			}
			continue
		}
		c.put(k, d)
		en := &entry{op: opInsert, db: c.db, coll: c.name, uuid: c.uuid, docKey: idKeyDoc(d), postImage: d}
		e.appendEntryLocked(en)
		n++
	}
	return n, werrs, nil
}

// DeleteStmt is one statement of a delete command: the documents Filter
// matches, the first one only when Limit is 1. Err, when set, is the
// statement's own error (its filter did not compile), reported as a write
// error in its turn.
type DeleteStmt struct {
	Filter query.Matcher
	Limit  int64
	Err    error
}

// Delete runs the statements against db.coll and logs a delete event for
// every document removed; ordered stops at the first failing statement. It
// returns how many documents were deleted.
func (e *Engine) Delete(db, coll string, stmts []DeleteStmt, ordered bool) (int, []WriteError, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var werrs []WriteError
	for i, st := range stmts {
		if st.Err != nil {
			werrs = append(werrs, WriteError{i, codes.As(st.Err)})
			if ordered {
				break
			}
			continue
		}
		if c == nil {
			continue
		}
		var keys []string
		c.each(func(k string, d bsoncore.Document) bool {
			if st.Filter.Matches(d) {
				keys = append(keys, k)
				return st.Limit != 1
			}
			return true
		})
		for _, k := range keys {
			d, _ := c.get(k)
			e.deleteDocLocked(c, k, d)
			n++
		}
	}
	return n, werrs, nil
}

// checkIDForStorage refuses an _id a real server cannot store: a
// document with a '$'-prefixed field.
func checkIDForStorage(id bsoncore.Value) *codes.Error {
	d, ok := id.DocumentOK()
	if !ok {
		return nil
	}
	elems, _ := d.Elements()
	for _, el := range elems {
		if strings.HasPrefix(el.Key(), "$") {
			return codes.Errorf(codes.InvalidIdField, "_id fields may not contain '$'-prefixed fields: %s is not valid for storage.", el.Key())
		}
	}
	return nil
}
