package mongotest

import (
	"bytes"
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(handleCreateIndexes, "createIndexes")
	register(handleDropIndexes, "dropIndexes", "deleteIndexes")
	register(handleListIndexes, "listIndexes")
}

// indexOptionFields are the fields an index specification may carry
// besides key and name. mongotest records them and enforces unique (with
// sparse and partialFilterExpression; an array is one key, not multikey);
// the others do not change what queries return.
var indexOptionFields = map[string]bool{
	"v": true, "unique": true, "sparse": true, "expireAfterSeconds": true, "partialFilterExpression": true,
	"hidden": true, "collation": true, "background": true, "weights": true, "default_language": true,
	"language_override": true, "textIndexVersion": true, "2dsphereIndexVersion": true, "bits": true,
	"min": true, "max": true, "wildcardProjection": true, "storageEngine": true, "prepareUnique": true,
	"bucketSize": true, "clustered": true, "ns": true,
}

// normalizeIndexSpec returns the spec as a real server stores it: v, key,
// name first, then the options in the order given.
func normalizeIndexSpec(d bsoncore.Document) (indexSpec, error) {
	key, ok := d.Lookup("key").DocumentOK()
	if !ok {
		return indexSpec{}, codes.Errorf(codes.FailedToParse, "The 'key' field is a required property of an index specification")
	}
	kels, _ := key.Elements()
	if len(kels) == 0 {
		return indexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Index keys cannot be empty.")
	}
	for _, k := range kels {
		v := k.Value()
		if n, ok := bsonutil.NumberOf(v); ok && n == 0 {
			return indexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Values in the index key pattern can't be all zero: %s", key)
		}
		if _, ok := bsonutil.NumberOf(v); !ok && v.Type != bsoncore.TypeString {
			return indexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Values in v:2 index key pattern cannot be of type %s. Only numbers > 0, numbers < 0, and strings are allowed.", bsonutil.TypeName(v.Type))
		}
	}
	name, ok := d.Lookup("name").StringValueOK()
	if !ok || name == "" {
		return indexSpec{}, codes.Errorf(codes.FailedToParse, "The 'name' field is a required property of an index specification")
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendInt32Element(out, "v", 2)
	out = bsoncore.AppendDocumentElement(out, "key", key)
	out = bsoncore.AppendStringElement(out, "name", name)
	elems, _ := d.Elements()
	for _, el := range elems {
		switch k := el.Key(); {
		case k == "key" || k == "name" || k == "v" || k == "ns":
		case indexOptionFields[k]:
			if k == "background" {
				continue // accepted, not stored by modern servers
			}
			out = append(out, el...)
		default:
			return indexSpec{}, codes.Errorf(codes.InvalidIndexSpecificationOption, "The field '%s' is not valid for an index specification. Specification: %s", k, d)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return indexSpec{name: name, spec: out}, nil
}

// indexOptions returns a spec without v, key and name, for comparing
// options.
func indexOptions(spec bsoncore.Document) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := spec.Elements()
	for _, el := range elems {
		switch el.Key() {
		case "v", "key", "name":
			continue
		}
		out = append(out, el...)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func handleCreateIndexes(s *Server, r *request) (bsoncore.Document, error) {
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
	specs := make([]indexSpec, len(raw))
	for i, d := range raw {
		if specs[i], err = normalizeIndexSpec(d); err != nil {
			return nil, err
		}
		if specs[i].name == "_id_" || strings.HasPrefix(specs[i].name, "$") {
			if specs[i].name != "_id_" {
				return nil, codes.Errorf(codes.CannotCreateIndex, "index name cannot start with '$'")
			}
		}
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.dataCollLocked(r.db, coll); err != nil {
		return nil, err
	}
	created := e.collLocked(r.db, coll) == nil
	c, err := e.ensureCollLocked(r.db, coll)
	if err != nil {
		return nil, err
	}
	before := len(c.indexes)
	var toAdd []indexSpec
	for _, sp := range specs {
		dup, err := indexConflict(c.indexes, sp)
		if err != nil {
			return nil, err
		}
		if dup {
			continue
		}
		for _, o := range toAdd {
			if o.name == sp.name {
				return nil, codes.Errorf(codes.IndexKeySpecsConflict, "Index with name: %s already exists with a different key spec", sp.name)
			}
		}
		if err := c.uniqueViolation(sp); err != nil {
			return nil, err
		}
		toAdd = append(toAdd, sp)
	}
	for _, sp := range toAdd {
		c.indexes = append(c.indexes, sp)
		desc := bsoncore.NewDocumentBuilder().AppendArray("indexes", bsoncore.NewArrayBuilder().AppendDocument(sp.spec).Build()).Build()
		e.appendEntryLocked(&entry{op: opCreateIndexes, db: c.db, coll: c.name, uuid: c.uuid, expanded: true, opDesc: desc})
	}
	reply := bson.D{
		{Key: "numIndexesBefore", Value: int32(before)},
		{Key: "numIndexesAfter", Value: int32(len(c.indexes))},
		{Key: "createdCollectionAutomatically", Value: created},
	}
	if len(toAdd) == 0 {
		reply = append(reply, bson.E{Key: "note", Value: "all indexes already exist"})
	}
	return marshal(reply)
}

// indexConflict tells whether sp already exists (an identical index: a
// no-op) or conflicts with an existing index by name or key.
func indexConflict(existing []indexSpec, sp indexSpec) (dup bool, err error) {
	key := sp.spec.Lookup("key")
	opts := indexOptions(sp.spec)
	for _, ix := range existing {
		sameName := ix.name == sp.name
		xk := ix.spec.Lookup("key")
		sameKey := xk.Type == key.Type && bytes.Equal(xk.Data, key.Data)
		sameOpts := bytes.Equal(indexOptions(ix.spec), opts)
		switch {
		case sameName && sameKey && sameOpts:
			return true, nil
		case sameName && sameKey:
			return false, codes.Errorf(codes.IndexOptionsConflict, "An existing index has the same name as the requested index but different options. Requested index: %s, existing index: %s", sp.spec, ix.spec)
		case sameName:
			return false, codes.Errorf(codes.IndexKeySpecsConflict, "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: %s, existing index: %s", sp.spec, ix.spec)
		case sameKey && sameOpts:
			return false, codes.Errorf(codes.IndexOptionsConflict, "Index already exists with a different name: %s", ix.name)
		}
	}
	return false, nil
}

func handleDropIndexes(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
	if err != nil {
		return nil, err
	}
	target := r.arg("index")
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(r.db, coll)
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "ns not found %s.%s", r.db, coll)
	}
	find := func(name string) (int, error) {
		for i, ix := range c.indexes {
			if ix.name == name {
				if name == "_id_" {
					return 0, codes.Errorf(codes.InvalidOptions, "cannot drop _id index")
				}
				return i, nil
			}
		}
		return 0, codes.Errorf(codes.IndexNotFound, "index not found with name [%s]", name)
	}
	var drop []int
	switch target.Type {
	case bsoncore.TypeString:
		name := target.StringValue()
		if name == "*" {
			for i := 1; i < len(c.indexes); i++ {
				drop = append(drop, i)
			}
			break
		}
		i, err := find(name)
		if err != nil {
			return nil, err
		}
		drop = append(drop, i)
	case bsoncore.TypeArray:
		arr, _ := target.ArrayOK()
		vals, _ := arr.Values()
		for _, v := range vals {
			name, ok := v.StringValueOK()
			if !ok {
				return nil, codes.Errorf(codes.TypeMismatch, "dropIndexes 'index' array elements must be strings")
			}
			i, err := find(name)
			if err != nil {
				return nil, err
			}
			drop = append(drop, i)
		}
	case bsoncore.TypeEmbeddedDocument:
		found := false
		for i, ix := range c.indexes {
			k := ix.spec.Lookup("key")
			if bytes.Equal(k.Data, target.Data) {
				if ix.name == "_id_" {
					return nil, codes.Errorf(codes.InvalidOptions, "cannot drop _id index")
				}
				drop, found = append(drop, i), true
				break
			}
		}
		if !found {
			return nil, codes.Errorf(codes.IndexNotFound, "can't find index with key: %s", target)
		}
	default:
		return nil, codes.Errorf(codes.TypeMismatch, "dropIndexes 'index' must be a string, a document or an array of strings")
	}
	was := len(c.indexes)
	gone := map[int]bool{}
	for _, i := range drop {
		gone[i] = true
	}
	kept := c.indexes[:0:0]
	for i, ix := range c.indexes {
		if !gone[i] {
			kept = append(kept, ix)
			continue
		}
		desc := bsoncore.NewDocumentBuilder().AppendArray("indexes", bsoncore.NewArrayBuilder().AppendDocument(ix.spec).Build()).Build()
		e.appendEntryLocked(&entry{op: opDropIndexes, db: c.db, coll: c.name, uuid: c.uuid, expanded: true, opDesc: desc})
	}
	c.indexes = kept
	return marshal(bson.D{{Key: "nIndexesWas", Value: int32(was)}})
}

func handleListIndexes(s *Server, r *request) (bsoncore.Document, error) {
	coll, err := r.collName()
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
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "ns does not exist: %s.%s", r.db, coll)
	}
	docs := make([]bsoncore.Document, len(c.indexes))
	for i, ix := range c.indexes {
		docs[i] = ix.spec
	}
	cur := &cursor{ns: r.db + ".$cmd.listIndexes." + coll}
	return e.cursorReplyLocked(cur, "firstBatch", batch{events: docs}), nil
}
