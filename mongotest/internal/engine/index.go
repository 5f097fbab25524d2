package engine

import (
	"bytes"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

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

// NormalizeIndexSpec returns the spec as a real server stores it: v, key,
// name first, then the options in the order given.
func NormalizeIndexSpec(d bsoncore.Document) (IndexSpec, error) {
	key, ok := d.Lookup("key").DocumentOK()
	if !ok {
		return IndexSpec{}, codes.Errorf(codes.FailedToParse, "The 'key' field is a required property of an index specification")
	}
	kels, _ := key.Elements()
	if len(kels) == 0 {
		return IndexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Index keys cannot be empty.")
	}
	for _, k := range kels {
		v := k.Value()
		if n, ok := bsonutil.NumberOf(v); ok && n == 0 {
			return IndexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Values in the index key pattern can't be all zero: %s", key)
		}
		if _, ok := bsonutil.NumberOf(v); !ok && v.Type != bsoncore.TypeString {
			return IndexSpec{}, codes.Errorf(codes.CannotCreateIndex, "Values in v:2 index key pattern cannot be of type %s. Only numbers > 0, numbers < 0, and strings are allowed.", bsonutil.TypeName(v.Type))
		}
	}
	name, ok := d.Lookup("name").StringValueOK()
	if !ok || name == "" {
		return IndexSpec{}, codes.Errorf(codes.FailedToParse, "The 'name' field is a required property of an index specification")
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
			return IndexSpec{}, codes.Errorf(codes.InvalidIndexSpecificationOption, "The field '%s' is not valid for an index specification. Specification: %s", k, d)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return IndexSpec{name: name, spec: out}, nil
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

// indexConflict tells whether sp already exists (an identical index: a
// no-op) or conflicts with an existing index by name or key.
func indexConflict(existing []IndexSpec, sp IndexSpec) (dup bool, err error) {
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

// Name returns the index's name.
func (sp IndexSpec) Name() string { return sp.name }

// IndexesCreated is what createIndexes did.
type IndexesCreated struct {
	Before, After int
	// CreatedCollection is set when the collection did not exist.
	CreatedCollection bool
	// None is set when every index already existed.
	None bool
}

// CreateIndexes adds the indexes of specs that db.coll does not have yet,
// creating the collection when needed, and logs a createIndexes event for
// each. An index that conflicts with an existing one by name or key, or a
// unique index the documents violate, fails the whole command.
func (e *Engine) CreateIndexes(db, coll string, specs []IndexSpec) (IndexesCreated, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var res IndexesCreated
	if _, err := e.dataCollLocked(db, coll); err != nil {
		return res, err
	}
	res.CreatedCollection = e.collLocked(db, coll) == nil
	c, err := e.ensureCollLocked(db, coll)
	if err != nil {
		return res, err
	}
	res.Before = len(c.indexes)
	var toAdd []IndexSpec
	for _, sp := range specs {
		dup, err := indexConflict(c.indexes, sp)
		if err != nil {
			return res, err
		}
		if dup {
			continue
		}
		for _, o := range toAdd {
			if o.name == sp.name {
				return res, codes.Errorf(codes.IndexKeySpecsConflict, "Index with name: %s already exists with a different key spec", sp.name)
			}
		}
		if err := c.uniqueViolation(sp); err != nil {
			return res, err
		}
		toAdd = append(toAdd, sp)
	}
	for _, sp := range toAdd {
		c.indexes = append(c.indexes, sp)
		desc := bsoncore.NewDocumentBuilder().AppendArray("indexes", bsoncore.NewArrayBuilder().AppendDocument(sp.spec).Build()).Build()
		e.appendEntryLocked(&entry{op: opCreateIndexes, db: c.db, coll: c.name, uuid: c.uuid, expanded: true, opDesc: desc})
	}
	res.After = len(c.indexes)
	res.None = len(toAdd) == 0
	return res, nil
}

// DropIndexes drops the indexes of db.coll that target names: "*" (all
// but _id_), a name, an array of names or a key pattern. It logs a
// dropIndexes event for each and returns how many indexes there were.
func (e *Engine) DropIndexes(db, coll string, target bsoncore.Value) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(db, coll)
	if c == nil {
		return 0, codes.Errorf(codes.NamespaceNotFound, "ns not found %s.%s", db, coll)
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
			return 0, err
		}
		drop = append(drop, i)
	case bsoncore.TypeArray:
		arr, _ := target.ArrayOK()
		vals, _ := arr.Values()
		for _, v := range vals {
			name, ok := v.StringValueOK()
			if !ok {
				return 0, codes.Errorf(codes.TypeMismatch, "dropIndexes 'index' array elements must be strings")
			}
			i, err := find(name)
			if err != nil {
				return 0, err
			}
			drop = append(drop, i)
		}
	case bsoncore.TypeEmbeddedDocument:
		found := false
		for i, ix := range c.indexes {
			k := ix.spec.Lookup("key")
			if bytes.Equal(k.Data, target.Data) {
				if ix.name == "_id_" {
					return 0, codes.Errorf(codes.InvalidOptions, "cannot drop _id index")
				}
				drop, found = append(drop, i), true
				break
			}
		}
		if !found {
			return 0, codes.Errorf(codes.IndexNotFound, "can't find index with key: %s", target)
		}
	default:
		return 0, codes.Errorf(codes.TypeMismatch, "dropIndexes 'index' must be a string, a document or an array of strings")
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
	return was, nil
}

// Indexes returns the index documents of db.coll.
func (e *Engine) Indexes(db, coll string) ([]bsoncore.Document, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dataCollLocked(db, coll)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "ns does not exist: %s.%s", db, coll)
	}
	docs := make([]bsoncore.Document, len(c.indexes))
	for i, ix := range c.indexes {
		docs[i] = ix.spec
	}
	return docs, nil
}
