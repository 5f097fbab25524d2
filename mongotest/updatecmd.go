package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"bytes"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// updateOutcome is what one update did to one document.
type updateOutcome struct {
	newDoc bsoncore.Document
	op     string // opUpdate or opReplace; "" when the document is unchanged
	desc   *updateDesc
}

// newUpdateCtx prepares applying an update to one document.
func (e *engine) newUpdateCtxLocked(s *updateSpec, q matcher, old bsoncore.Document) *updateCtx {
	ctx := &updateCtx{now: time.Now(), ts: e.clock, query: q, original: old, filterDoc: s.arrayFilters}
	ctx.ts.I++
	return ctx
}

// apply computes the new version of old. A replacement keeps old's _id;
// changing _id is ImmutableField (66).
func (s *updateSpec) apply(old bsoncore.Document, ctx *updateCtx) (updateOutcome, error) {
	oldID := old.Lookup("_id")
	var nd bsoncore.Document
	var desc *updateDesc
	op := opUpdate
	switch {
	case s.replacement != nil:
		op = opReplace
		if id, err := s.replacement.LookupErr("_id"); err == nil {
			if !bsonutil.ValuesEqual(id, oldID) || id.Type != oldID.Type {
				return updateOutcome{}, codes.Errorf(codes.ImmutableField, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: %s", id)
			}
			nd = s.replacement
		} else {
			nd = prependID(oldID, s.replacement)
		}
	case s.pipeline != nil:
		res, err := runUpdatePipeline(s.pipeline, old)
		if err != nil {
			return updateOutcome{}, err
		}
		nd = res
		if err := checkIDKept(oldID, nd); err != nil {
			return updateOutcome{}, err
		}
		var ok bool
		if desc, ok = diffDocs(old, nd); !ok {
			// The delta is not smaller than the document: a real server
			// logs a replacement, so the event is a replace.
			op = opReplace
		}
	default:
		m := docToM(old)
		ctx.log = nil
		if err := s.applyMods(m, ctx); err != nil {
			return updateOutcome{}, err
		}
		nd = m.bytes()
		if err := checkIDKept(oldID, nd); err != nil {
			return updateOutcome{}, err
		}
		desc = describeMods(ctx, docToM(old), m)
	}
	if len(nd) > bsonutil.MaxObjectSize {
		return updateOutcome{}, codes.Errorf(codes.BSONObjectTooLarge, "Resulting document after update is larger than %d", bsonutil.MaxObjectSize)
	}
	if bytes.Equal(nd, old) {
		return updateOutcome{newDoc: old}, nil
	}
	return updateOutcome{newDoc: nd, op: op, desc: desc}, nil
}

func checkIDKept(oldID bsoncore.Value, nd bsoncore.Document) error {
	id, err := nd.LookupErr("_id")
	if err != nil {
		return codes.Errorf(codes.ImmutableField, "After applying the update, the (immutable) field '_id' was found to have been removed")
	}
	if id.Type != oldID.Type || !bytes.Equal(id.Data, oldID.Data) {
		return codes.Errorf(codes.ImmutableField, "Performing an update on the path '_id' would modify the immutable field '_id'")
	}
	return nil
}

// prependID returns d with _id id as its first field.
func prependID(id bsoncore.Value, d bsoncore.Document) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(d)+len(id.Data)+8))
	out = bsoncore.AppendValueElement(out, "_id", id)
	elems, _ := d.Elements()
	for _, el := range elems {
		if el.Key() != "_id" {
			out = append(out, el...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// upsertDoc builds the document an upsert inserts: the equality
// conditions of the query, then the update applied with $setOnInsert; an
// _id first, generated when neither gives one.
func (s *updateSpec) upsertDoc(q bsoncore.Document, ctx *updateCtx) (bsoncore.Document, error) {
	var nd bsoncore.Document
	switch {
	case s.replacement != nil:
		nd = s.replacement
		if _, err := nd.LookupErr("_id"); err != nil {
			seed := &mdoc{}
			seedFromQuery(seed, q)
			if id, ok := seed.get("_id"); ok {
				nd = prependID(valueOfM(id), nd)
			}
		}
	case s.pipeline != nil:
		seed := &mdoc{}
		seedFromQuery(seed, q)
		res, err := runUpdatePipeline(s.pipeline, seed.bytes())
		if err != nil {
			return nil, err
		}
		nd = res
	default:
		seed := &mdoc{}
		seedFromQuery(seed, q)
		ctx.inserting = true
		if err := s.applyMods(seed, ctx); err != nil {
			return nil, err
		}
		nd = seed.bytes()
	}
	id, err := nd.LookupErr("_id")
	if err != nil {
		id = bsoncore.Value{Type: bsoncore.TypeObjectID, Data: bsoncore.AppendObjectID(nil, bson.NewObjectID())}
	}
	return prependID(id, nd), nil
}

// seedFromQuery copies the equality conditions of a query into doc, as an
// upsert starts from them.
func seedFromQuery(doc *mdoc, q bsoncore.Document) {
	elems, _ := q.Elements()
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		if k == "$and" {
			arr, _ := v.ArrayOK()
			vals, _ := arr.Values()
			for _, sv := range vals {
				if sd, ok := sv.DocumentOK(); ok {
					seedFromQuery(doc, sd)
				}
			}
			continue
		}
		if len(k) > 0 && k[0] == '$' {
			continue
		}
		if d, ok := v.DocumentOK(); ok {
			if first, _ := commandName(d); len(first) > 0 && first[0] == '$' {
				eq, err := d.LookupErr("$eq")
				if err != nil {
					continue
				}
				v = eq
			}
		}
		path := splitPath(k)
		parent, comps, _, err := slot(doc, path, true)
		if err != nil || parent == nil {
			continue
		}
		setSlot(parent, comps[len(comps)-1], toM(v))
	}
}

func splitPath(k string) []string {
	var out []string
	start := 0
	for i := 0; i < len(k); i++ {
		if k[i] == '.' {
			out = append(out, k[start:i])
			start = i + 1
		}
	}
	return append(out, k[start:])
}

// writeUpdateLocked stores an updated document and logs its change; a
// unique index the new document would violate fails it.
func (e *engine) writeUpdateLocked(c *collection, k string, old bsoncore.Document, out updateOutcome) error {
	if ce := c.uniqueConflict(k, out.newDoc); ce != nil {
		return ce
	}
	c.put(k, out.newDoc)
	en := &entry{
		op: out.op, db: c.db, coll: c.name, uuid: c.uuid,
		docKey: idKeyDoc(out.newDoc), postImage: out.newDoc, imagesKept: c.preAndPostImages,
	}
	if c.preAndPostImages {
		en.preImage = old
	}
	if out.op == opUpdate {
		en.updateDesc, en.disambiguated = out.desc.build()
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
		if err := checkCollation(cd); err != nil {
			return res, err
		}
	}
	if st.Lookup("c").Type != 0 {
		return res, codes.Errorf(codes.NotImplemented, "mongotest does not support update with let variables (c)")
	}
	spec, err := compileUpdate(u, st.Lookup("arrayFilters"))
	if err != nil {
		return res, err
	}
	if multi && spec.replacement != nil {
		return res, codes.Errorf(codes.FailedToParse, "multi update is not supported for replacement-style update")
	}
	var keys []sortKey
	if sd, ok := st.Lookup("sort").DocumentOK(); ok {
		if multi {
			return res, codes.Errorf(codes.FailedToParse, "Cannot specify sort with multi=true")
		}
		if keys, err = parseSort(sd); err != nil {
			return res, err
		}
	}
	m, err := compileFilter(q)
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
		out, err := spec.apply(old, e.newUpdateCtxLocked(spec, m, old))
		if err != nil {
			return res, err
		}
		res.n++
		if out.op == "" {
			continue
		}
		k, _ := bsonutil.DocKey(old)
		if err := e.writeUpdateLocked(c, k, old, out); err != nil {
			return res, err
		}
		res.nModified++
	}
	if len(docs) == 0 && upsert {
		d, err := spec.upsertDoc(q, e.newUpdateCtxLocked(spec, m, nil))
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
