package engine

import (
	"bytes"
	"sort"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func (e *Engine) dropCollLocked(c *collection) {
	delete(e.dbs[c.db].colls, c.name)
	e.appendEntryLocked(&entry{op: opDrop, db: c.db, coll: c.name, uuid: c.uuid})
}

// collectionOptions returns a collection's options as listCollections and
// a modify event's stateBeforeChange show them.
func collectionOptions(c *collection, withUUID bool) bsoncore.Document {
	b := bsoncore.NewDocumentBuilder()
	if withUUID {
		b.AppendBinary("uuid", 4, c.uuid[:])
	}
	if c.preAndPostImages {
		b.AppendDocument("changeStreamPreAndPostImages", bsoncore.NewDocumentBuilder().AppendBoolean("enabled", true).Build())
	}
	return b.Build()
}

func findIndexForMod(c *collection, index bsoncore.Document) (int, error) {
	name, byName := index.Lookup("name").StringValueOK()
	key, byKey := index.Lookup("keyPattern").DocumentOK()
	if !byName && !byKey {
		return 0, codes.Errorf(codes.InvalidOptions, "must specify either index name or key pattern for collMod")
	}
	for i, ix := range c.indexes {
		if byName && ix.name == name {
			return i, nil
		}
		if byKey && bytes.Equal(ix.spec.Lookup("key").Data, key) {
			return i, nil
		}
	}
	if byName {
		return 0, codes.Errorf(codes.IndexNotFound, "cannot find index %s for ns %s", name, c.ns())
	}
	return 0, codes.Errorf(codes.IndexNotFound, "cannot find index %s for ns %s", key, c.ns())
}

// CreateOptions are the options of create that mongotest records.
type CreateOptions struct {
	// PreAndPostImages is changeStreamPreAndPostImages.enabled.
	PreAndPostImages bool
	// ViewOn and Pipeline describe a view; mongotest records, lists and
	// drops it but does not evaluate it.
	ViewOn   string
	Pipeline bsoncore.Document
}

// Create creates db.name and logs its create event. When the collection
// exists, it succeeds with no event if the options are the same and fails
// with NamespaceExists if they differ, as on a real server.
func (e *Engine) Create(db, name string, opts CreateOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.collLocked(db, name); c != nil {
		if c.preAndPostImages == opts.PreAndPostImages && c.viewOn == opts.ViewOn &&
			(opts.ViewOn == "" || bytes.Equal(c.viewPipeline, opts.Pipeline)) {
			return nil
		}
		return codes.Errorf(codes.NamespaceExists, "namespace %s.%s already exists, but with different options", db, name)
	}
	if err := ValidCollName(db, name); err != nil {
		return err
	}
	c := newCollection(db, name)
	c.preAndPostImages = opts.PreAndPostImages
	if opts.ViewOn != "" {
		c.viewOn, c.viewPipeline, c.indexes = opts.ViewOn, opts.Pipeline, nil
	}
	e.dbLocked(db, true).colls[name] = c
	e.appendEntryLocked(createEntry(c))
	return nil
}

// Dropped describes a dropped collection.
type Dropped struct {
	NS          string
	NIndexesWas int
	View        bool
}

// Drop drops db.name and logs its drop event; ok is false when there was
// no such collection (which, since 7.0, is no error).
func (e *Engine) Drop(db, name string) (d Dropped, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(db, name)
	if c == nil {
		return d, false
	}
	e.dropCollLocked(c)
	return Dropped{NS: c.ns(), NIndexesWas: len(c.indexes), View: c.viewOn != ""}, true
}

// DropDatabase drops every collection of db, in name order, then db, and
// logs their events; it reports false when there was no such database.
func (e *Engine) DropDatabase(db string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dbs[db]
	if d == nil {
		return false
	}
	names := make([]string, 0, len(d.colls))
	for n := range d.colls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e.dropCollLocked(d.colls[n])
	}
	delete(e.dbs, db)
	e.appendEntryLocked(&entry{op: opDropDatabase, db: db})
	return true
}

// CollectionInfo is what listCollections shows of a collection or view.
type CollectionInfo struct {
	Name             string
	UUID             [16]byte
	PreAndPostImages bool
	ViewOn           string
	ViewPipeline     bsoncore.Document
	IDIndex          bsoncore.Document // nil for a view
}

// Collections returns the collections and views of db in name order.
func (e *Engine) Collections(db string) []CollectionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dbs[db]
	if d == nil {
		return nil
	}
	names := make([]string, 0, len(d.colls))
	for n := range d.colls {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]CollectionInfo, len(names))
	for i, n := range names {
		c := d.colls[n]
		out[i] = CollectionInfo{Name: n, UUID: c.uuid, PreAndPostImages: c.preAndPostImages, ViewOn: c.viewOn, ViewPipeline: c.viewPipeline}
		if c.viewOn == "" {
			out[i].IDIndex = c.indexes[0].spec
		}
	}
	return out
}

// DatabaseNames returns the names of the databases in name order.
func (e *Engine) DatabaseNames() []string {
	e.mu.Lock()
	names := make([]string, 0, len(e.dbs))
	for n := range e.dbs {
		names = append(names, n)
	}
	e.mu.Unlock()
	sort.Strings(names)
	return names
}

// Rename renames fromDB.fromColl to toDB.toColl and logs one rename
// event; with dropTarget an existing target goes away inside the rename,
// as on a real server (the event carries its UUID).
func (e *Engine) Rename(fromDB, fromColl, toDB, toColl string, dropTarget bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(fromDB, fromColl)
	if c == nil {
		return codes.Errorf(codes.NamespaceNotFound, "Source collection %s.%s does not exist", fromDB, fromColl)
	}
	opDesc := bsoncore.NewDocumentBuilder().AppendDocument("to",
		bsoncore.NewDocumentBuilder().AppendString("db", toDB).AppendString("coll", toColl).Build())
	if t := e.collLocked(toDB, toColl); t != nil {
		if !dropTarget {
			return codes.Errorf(codes.NamespaceExists, "target namespace exists")
		}
		delete(e.dbs[toDB].colls, toColl)
		opDesc.AppendBinary("dropTarget", 4, t.uuid[:])
	}
	delete(e.dbs[fromDB].colls, fromColl)
	c.db, c.name = toDB, toColl
	e.dbLocked(toDB, true).colls[toColl] = c
	e.appendEntryLocked(&entry{
		op: opRename, db: fromDB, coll: fromColl, uuid: c.uuid,
		toDB: toDB, toColl: toColl, opDesc: opDesc.Build(),
	})
	return nil
}

// CollMod changes db.name: changeStreamPreAndPostImages when images is
// set, the options of one index when index is set. It logs a modify event
// and returns the reply's fields (<option>_old and <option>_new of the
// index options changed).
func (e *Engine) CollMod(db, name string, images *bool, index bsoncore.Document) (bson.D, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(db, name)
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "ns does not exist: %s.%s", db, name)
	}
	before := collectionOptions(c, true)
	desc := bsoncore.NewDocumentBuilder()
	state := bsoncore.NewDocumentBuilder().AppendDocument("collectionOptions", before)
	reply := bson.D{}
	if images != nil {
		c.preAndPostImages = *images
		desc.AppendDocument("changeStreamPreAndPostImages", bsoncore.NewDocumentBuilder().AppendBoolean("enabled", *images).Build())
	}
	if index != nil {
		ix, err := findIndexForMod(c, index)
		if err != nil {
			return nil, err
		}
		spec := query.DocToMutable(c.indexes[ix].spec)
		oldOpts := &query.MutableDoc{}
		newDesc := query.MutableDocOf("name", bsoncore.Value{Type: bsoncore.TypeString, Data: bsoncore.AppendString(nil, c.indexes[ix].name)})
		ielems, _ := index.Elements()
		for _, el := range ielems {
			switch k := el.Key(); k {
			case "name", "keyPattern":
			case "hidden", "expireAfterSeconds", "prepareUnique", "unique":
				old, had := spec.Get(k)
				if had {
					oldOpts.Set(k, old)
				} else if k == "hidden" {
					oldOpts.Set(k, bsoncore.Value{Type: bsoncore.TypeBoolean, Data: []byte{0}})
				}
				if had {
					reply = append(reply, bson.E{Key: k + "_old", Value: bson.RawValue{Type: bson.Type(query.ValueOfM(old).Type), Value: query.ValueOfM(old).Data}})
				} else if k == "hidden" {
					reply = append(reply, bson.E{Key: k + "_old", Value: false})
				}
				reply = append(reply, bson.E{Key: k + "_new", Value: bson.RawValue{Type: bson.Type(el.Value().Type), Value: el.Value().Data}})
				if k == "hidden" && !query.Truthy(el.Value()) {
					spec.Del(k)
				} else {
					spec.Set(k, el.Value())
				}
				newDesc.Set(k, el.Value())
			default:
				return nil, codes.Errorf(codes.InvalidOptions, "unknown index option to collMod: %s", k)
			}
		}
		c.indexes[ix].spec = spec.Bytes()
		desc.AppendDocument("index", newDesc.Bytes())
		state.AppendDocument("indexOptions", oldOpts.Bytes())
	}
	e.appendEntryLocked(&entry{
		op: opModify, db: c.db, coll: c.name, uuid: c.uuid, expanded: true,
		opDesc: desc.Build(), stateBefore: state.Build(),
	})
	return reply, nil
}
