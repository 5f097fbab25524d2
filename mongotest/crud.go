package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(retryableWrite(handleInsert), "insert")
	register(retryableWrite(handleDelete), "delete")
	register(handleFind, "find")
	register(retryableWrite(handleUpdate), "update")
	register(handleCount, "count")
}

// writeError is one entry of a write command's writeErrors.
type writeError struct {
	index int
	err   *codes.Error
}

func writeReply(n int, extra bson.D, werrs []writeError) (bsoncore.Document, error) {
	d := bson.D{{Key: "n", Value: int32(n)}}
	d = append(d, extra...)
	if len(werrs) > 0 {
		arr := make(bson.A, len(werrs))
		for i, we := range werrs {
			arr[i] = bson.D{
				{Key: "index", Value: int32(we.index)},
				{Key: "code", Value: we.err.Code},
				{Key: "codeName", Value: we.err.Name()},
				{Key: "errmsg", Value: we.err.Message},
			}
		}
		d = append(d, bson.E{Key: "writeErrors", Value: arr})
	}
	return marshal(d)
}

// collName reads the collection a command names in its first field.
func (r *request) collName() (string, error) {
	name, ok := r.arg(r.name).StringValueOK()
	if !ok || name == "" {
		return "", codes.Errorf(codes.InvalidNamespace, "collection name must be a non-empty string in command %s", r.name)
	}
	return name, nil
}

// docsArg reads an array of documents argument.
func (r *request) docsArg(key string) ([]bsoncore.Document, error) {
	arr, ok := r.arg(key).ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "BSON field '%s.%s' is missing or not an array", r.name, key)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "%s: %v", key, err)
	}
	out := make([]bsoncore.Document, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "BSON field '%s.%s.%d' must be an object", r.name, key, i)
		}
		out[i] = d
	}
	return out, nil
}

// ordered reads the ordered flag (default true).
func (r *request) ordered() bool {
	if b, ok := r.arg("ordered").BooleanOK(); ok {
		return b
	}
	return true
}

// dataCollLocked returns db.name for reading or writing documents: nil
// when it does not exist, an error when it is a view (mongotest does not
// evaluate views).
func (e *engine) dataCollLocked(db, name string) (*collection, error) {
	c := e.collLocked(db, name)
	if c != nil && c.viewOn != "" {
		return nil, codes.Errorf(codeCommandNotSupportedOnView, "Namespace %s.%s is a view, not a collection (mongotest does not evaluate views)", db, name)
	}
	return c, nil
}

const codeCommandNotSupportedOnView = 166

// ensureCollLocked returns db.name, creating it (and logging the create
// event) when it does not exist.
func (e *engine) ensureCollLocked(db, name string) (*collection, error) {
	if c, err := e.dataCollLocked(db, name); c != nil || err != nil {
		return c, err
	}
	if err := validCollName(db, name); err != nil {
		return nil, err
	}
	c := newCollection(db, name)
	e.dbLocked(db, true).colls[name] = c
	e.appendEntryLocked(createEntry(c))
	return c, nil
}

func validCollName(db, name string) error {
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

func handleInsert(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	docs, err := r.docsArg("documents")
	if err != nil {
		return nil, err
	}
	ordered := r.ordered()
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.ensureCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	n := 0
	var werrs []writeError
	for i, d := range docs {
		if len(d) > bsonutil.MaxObjectSize {
			werrs = append(werrs, writeError{i, codes.Errorf(codes.BSONObjectTooLarge, "object to insert too large. size in bytes: %d, max size: %d", len(d), bsonutil.MaxObjectSize)})
			if ordered {
				break
			}
			continue
		}
		d = withID(d)
		k, _ := bsonutil.DocKey(d)
		if _, dup := c.get(k); dup {
			werrs = append(werrs, writeError{i, codes.Errorf(codes.DuplicateKey, "E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %s }", c.ns(), d.Lookup("_id"))})
			if ordered {
				break
			}
			continue
		}
		if ce := c.uniqueConflict(k, d); ce != nil {
			werrs = append(werrs, writeError{i, ce})
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
	return writeReply(n, nil, werrs)
}

func handleDelete(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	stmts, err := r.docsArg("deletes")
	if err != nil {
		return nil, err
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	n := 0
	var werrs []writeError
	for i, st := range stmts {
		q, ok := st.Lookup("q").DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.FailedToParse, "BSON field 'delete.deletes.q' is missing but a required field")
		}
		limit, _ := bsonutil.AsInt64(st.Lookup("limit"))
		m, err := query.CompileFilter(q)
		if err != nil {
			werrs = append(werrs, writeError{i, codes.As(err)})
			if r.ordered() {
				break
			}
			continue
		}
		if c == nil {
			continue
		}
		var keys []string
		c.each(func(k string, d bsoncore.Document) bool {
			if m.Matches(d) {
				keys = append(keys, k)
				return limit != 1
			}
			return true
		})
		for _, k := range keys {
			d, _ := c.get(k)
			e.deleteDocLocked(c, k, d)
			n++
		}
	}
	return writeReply(n, nil, werrs)
}

// deleteDocLocked removes d (stored under key k) from c and logs its
// delete event.
func (e *engine) deleteDocLocked(c *collection, k string, d bsoncore.Document) {
	c.remove(k)
	en := &entry{op: opDelete, db: c.db, coll: c.name, uuid: c.uuid, docKey: idKeyDoc(d), imagesKept: c.preAndPostImages}
	if c.preAndPostImages {
		en.preImage = d
	}
	e.appendEntryLocked(en)
}

// findGetMore returns the next documents of a find cursor.
func (e *engine) findGetMore(c *cursor, batchSize int) (bsoncore.Document, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := c.docs
	if batchSize > 0 && len(out) > batchSize {
		out, c.docs = out[:batchSize], out[batchSize:]
	} else {
		c.docs = nil
	}
	b := batch{events: out, ended: len(c.docs) == 0}
	return e.cursorReplyLocked(c, "nextBatch", b), nil
}
