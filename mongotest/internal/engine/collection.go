package engine

import (
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// collection is one collection's documents, in insertion order, and its
// metadata. Documents are stored as immutable BSON: an update stores a new
// document.
type collection struct {
	db, name string
	uuid     [16]byte
	// preAndPostImages is the changeStreamPreAndPostImages option: writes
	// then record the images that fullDocument/fullDocumentBeforeChange
	// "whenAvailable" and "required" read.
	preAndPostImages bool
	indexes          []IndexSpec
	// viewOn and viewPipeline describe a view; a view holds no documents.
	viewOn       string
	viewPipeline bsoncore.Document

	order []string // keys in insertion order; "" marks a deleted slot
	byKey map[string]bsoncore.Document
	dead  int         // deleted slots in order
	uniq  *uniqueKeys // keys of the unique indexes; nil until first needed
}

// IndexSpec is an index as createIndexes received it, normalized.
type IndexSpec struct {
	name string
	spec bsoncore.Document // the whole index document, including v/key/name
}

func newCollection(db, name string) *collection {
	c := &collection{
		db:    db,
		name:  name,
		uuid:  newUUID(),
		byKey: make(map[string]bsoncore.Document),
	}
	id := bsoncore.NewDocumentBuilder().
		AppendInt32("v", 2).
		AppendDocument("key", bsoncore.NewDocumentBuilder().AppendInt32("_id", 1).Build()).
		AppendString("name", "_id_").
		Build()
	c.indexes = []IndexSpec{{name: "_id_", spec: id}}
	return c
}

func (c *collection) ns() string { return c.db + "." + c.name }

// get returns the document whose _id has key k.
func (c *collection) get(k string) (bsoncore.Document, bool) {
	d, ok := c.byKey[k]
	return d, ok
}

// put inserts or replaces the document under key k.
func (c *collection) put(k string, d bsoncore.Document) {
	old, ok := c.byKey[k]
	if !ok {
		c.order = append(c.order, k)
	}
	c.byKey[k] = d
	if c.uniq != nil {
		if ok {
			c.uniq.remove(k, old)
		}
		c.uniq.add(k, d)
	}
}

// remove deletes the document under key k.
func (c *collection) remove(k string) {
	old, ok := c.byKey[k]
	if !ok {
		return
	}
	delete(c.byKey, k)
	if c.uniq != nil {
		c.uniq.remove(k, old)
	}
	for i, o := range c.order {
		if o == k {
			c.order[i] = ""
			c.dead++
			break
		}
	}
	if c.dead > 32 && c.dead > len(c.order)/2 {
		live := c.order[:0]
		for _, o := range c.order {
			if o != "" {
				live = append(live, o)
			}
		}
		c.order, c.dead = live, 0
	}
}

// each calls f for every document in insertion order until f returns false.
// f must not modify the collection.
func (c *collection) each(f func(k string, d bsoncore.Document) bool) {
	for _, k := range c.order {
		if k == "" {
			continue
		}
		if !f(k, c.byKey[k]) {
			return
		}
	}
}
