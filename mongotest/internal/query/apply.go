package query

import (
	"bytes"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Operation types of an Outcome, as change events name them.
const (
	OpUpdate  = "update"
	OpReplace = "replace"
)

// NewUpdateContext prepares applying u to one document, old (nil for an
// upsert), matched by q; clusterTime is the time of the latest write, after
// which $currentDate's timestamps come.
func NewUpdateContext(u *Update, q Matcher, old bsoncore.Document, clusterTime bson.Timestamp) *UpdateContext {
	ctx := &UpdateContext{now: time.Now(), ts: clusterTime, query: q, original: old, filterDoc: u.arrayFilters}
	ctx.ts.I++
	return ctx
}

// updateOutcome is what one update did to one document.
type Outcome struct {
	NewDoc bsoncore.Document
	Op     string // OpUpdate or OpReplace; "" when the document is unchanged
	Desc   *UpdateDesc
}

// Apply computes the new version of old. A replacement keeps old's _id;
// changing _id is ImmutableField (66).
func (s *Update) Apply(old bsoncore.Document, ctx *UpdateContext) (Outcome, error) {
	oldID := old.Lookup("_id")
	var nd bsoncore.Document
	var desc *UpdateDesc
	op := OpUpdate
	switch {
	case s.Replacement != nil:
		op = OpReplace
		if id, err := s.Replacement.LookupErr("_id"); err == nil {
			if !bsonutil.ValuesEqual(id, oldID) || id.Type != oldID.Type {
				return Outcome{}, codes.Errorf(codes.ImmutableField, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: %s", id)
			}
			nd = s.Replacement
		} else {
			nd = prependID(oldID, s.Replacement)
		}
	case s.pipeline != nil:
		res, err := runUpdatePipeline(s.pipeline, old)
		if err != nil {
			return Outcome{}, err
		}
		nd = res
		if err := checkIDKept(oldID, nd); err != nil {
			return Outcome{}, err
		}
		var ok bool
		if desc, ok = DiffDocs(old, nd); !ok {
			// The delta is not smaller than the document: a real server
			// logs a replacement, so the event is a replace.
			op = OpReplace
		}
	default:
		m := DocToMutable(old)
		ctx.log = nil
		if err := s.applyMods(m, ctx); err != nil {
			return Outcome{}, err
		}
		nd = m.Bytes()
		if err := checkIDKept(oldID, nd); err != nil {
			return Outcome{}, err
		}
		desc = describeMods(ctx, DocToMutable(old), m)
	}
	if len(nd) > bsonutil.MaxObjectSize {
		return Outcome{}, codes.Errorf(codes.BSONObjectTooLarge, "Resulting document after update is larger than %d", bsonutil.MaxObjectSize)
	}
	if bytes.Equal(nd, old) {
		return Outcome{NewDoc: old}, nil
	}
	return Outcome{NewDoc: nd, Op: op, Desc: desc}, nil
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

// UpsertDoc builds the document an upsert inserts: the equality
// conditions of the query, then the update applied with $setOnInsert; an
// _id first, generated when neither gives one.
func (s *Update) UpsertDoc(q bsoncore.Document, ctx *UpdateContext) (bsoncore.Document, error) {
	var nd bsoncore.Document
	switch {
	case s.Replacement != nil:
		nd = s.Replacement
		if _, err := nd.LookupErr("_id"); err != nil {
			seed := &MutableDoc{}
			seedFromQuery(seed, q)
			if id, ok := seed.Get("_id"); ok {
				nd = prependID(ValueOfM(id), nd)
			}
		}
	case s.pipeline != nil:
		seed := &MutableDoc{}
		seedFromQuery(seed, q)
		res, err := runUpdatePipeline(s.pipeline, seed.Bytes())
		if err != nil {
			return nil, err
		}
		nd = res
	default:
		seed := &MutableDoc{}
		seedFromQuery(seed, q)
		ctx.inserting = true
		if err := s.applyMods(seed, ctx); err != nil {
			return nil, err
		}
		nd = seed.Bytes()
	}
	id, err := nd.LookupErr("_id")
	if err != nil {
		id = bsoncore.Value{Type: bsoncore.TypeObjectID, Data: bsoncore.AppendObjectID(nil, bson.NewObjectID())}
	}
	return prependID(id, nd), nil
}

// seedFromQuery copies the equality conditions of a query into doc, as an
// upsert starts from them.
func seedFromQuery(doc *MutableDoc, q bsoncore.Document) {
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
			if first, _ := bsonutil.FirstKey(d); len(first) > 0 && first[0] == '$' {
				eq, err := d.LookupErr("$eq")
				if err != nil {
					continue
				}
				v = eq
			}
		}
		path := SplitPath(k)
		parent, comps, _, err := slot(doc, path, true)
		if err != nil || parent == nil {
			continue
		}
		setSlot(parent, comps[len(comps)-1], toM(v))
	}
}

// SplitPath splits a dotted path into its components.
func SplitPath(k string) []string {
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

// CheckCollation accepts only the simple collation, which is what
// mongotest compares with.
func CheckCollation(d bsoncore.Document) error {
	if len(d) <= 5 {
		return nil
	}
	if loc, _ := d.Lookup("locale").StringValueOK(); loc == "simple" {
		return nil
	}
	return codes.Errorf(codes.NotImplemented, "mongotest does not support collations other than {locale: \"simple\"}")
}
