package mongotest

import (
	"bytes"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(handleCreate, "create")
	register(handleDrop, "drop")
	register(handleDropDatabase, "dropDatabase")
	register(handleListCollections, "listCollections")
	register(handleListDatabases, "listDatabases")
}

func handleCreate(s *Server, r *request) (bsoncore.Document, error) {
	name, err := r.collName()
	if err != nil {
		return nil, err
	}
	images := false
	if v := r.arg("changeStreamPreAndPostImages"); v.Type != 0 {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'create.changeStreamPreAndPostImages' must be an object")
		}
		images, _ = d.Lookup("enabled").BooleanOK()
	}
	viewOn, isView := r.arg("viewOn").StringValueOK()
	if r.arg("viewOn").Type != 0 && (!isView || viewOn == "") {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'create.viewOn' must be a non-empty string")
	}
	pipeline := bsoncore.Document(bsoncore.NewArrayBuilder().Build())
	if v := r.arg("pipeline"); v.Type != 0 {
		arr, ok := v.ArrayOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'create.pipeline' must be an array")
		}
		if !isView {
			return nil, codes.Errorf(codes.BadValue, "'pipeline' requires 'viewOn' to also be specified")
		}
		pipeline = bsoncore.Document(arr)
	}
	for _, k := range []string{"capped", "timeseries", "clusteredIndex", "encryptedFields"} {
		if v := r.arg(k); v.Type != 0 {
			if b, ok := v.BooleanOK(); ok && !b {
				continue
			}
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support create with %s", k)
		}
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.collLocked(r.db, name) != nil {
		return nil, codes.Errorf(codes.NamespaceExists, "Collection %s.%s already exists.", r.db, name)
	}
	if err := validCollName(r.db, name); err != nil {
		return nil, err
	}
	c := newCollection(r.db, name)
	c.preAndPostImages = images
	if isView {
		// A view is recorded, listed and dropped; mongotest does not
		// evaluate it.
		c.viewOn, c.viewPipeline, c.indexes = viewOn, pipeline, nil
	}
	e.dbLocked(r.db, true).colls[name] = c
	e.appendEntryLocked(createEntry(c))
	return nil, nil
}

func handleDrop(s *Server, r *request) (bsoncore.Document, error) {
	name, err := r.collName()
	if err != nil {
		return nil, err
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(r.db, name)
	if c == nil {
		// Since 7.0 dropping a missing collection succeeds.
		return nil, nil
	}
	e.dropCollLocked(c)
	if c.viewOn != "" {
		return nil, nil
	}
	return marshal(bson.D{{Key: "ns", Value: c.ns()}, {Key: "nIndexesWas", Value: int32(len(c.indexes))}})
}

func (e *engine) dropCollLocked(c *collection) {
	delete(e.dbs[c.db].colls, c.name)
	e.appendEntryLocked(&entry{op: opDrop, db: c.db, coll: c.name, uuid: c.uuid})
}

func handleDropDatabase(s *Server, r *request) (bsoncore.Document, error) {
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dbs[r.db]
	if d == nil {
		return nil, nil
	}
	names := make([]string, 0, len(d.colls))
	for n := range d.colls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e.dropCollLocked(d.colls[n])
	}
	delete(e.dbs, r.db)
	e.appendEntryLocked(&entry{op: opDropDatabase, db: r.db})
	return marshal(bson.D{{Key: "dropped", Value: r.db}})
}

func handleListCollections(s *Server, r *request) (bsoncore.Document, error) {
	var m query.Matcher = query.MatchAll(nil)
	if v := r.arg("filter"); v.Type != 0 {
		fd, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "listCollections filter must be an object")
		}
		var err error
		if m, err = query.CompileFilter(fd); err != nil {
			return nil, err
		}
	}
	nameOnly, _ := r.arg("nameOnly").BooleanOK()
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	var docs []bsoncore.Document
	if d := e.dbs[r.db]; d != nil {
		names := make([]string, 0, len(d.colls))
		for n := range d.colls {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := d.colls[n]
			var info bson.D
			switch {
			case nameOnly && c.viewOn != "":
				info = bson.D{{Key: "name", Value: n}, {Key: "type", Value: "view"}}
			case nameOnly:
				info = bson.D{{Key: "name", Value: n}, {Key: "type", Value: "collection"}}
			case c.viewOn != "":
				info = bson.D{
					{Key: "name", Value: n},
					{Key: "type", Value: "view"},
					{Key: "options", Value: bson.D{{Key: "viewOn", Value: c.viewOn}, {Key: "pipeline", Value: bson.Raw(c.viewPipeline)}}},
					{Key: "info", Value: bson.D{{Key: "readOnly", Value: true}}},
				}
			default:
				opts := bson.D{}
				if c.preAndPostImages {
					opts = append(opts, bson.E{Key: "changeStreamPreAndPostImages", Value: bson.D{{Key: "enabled", Value: true}}})
				}
				info = bson.D{
					{Key: "name", Value: n},
					{Key: "type", Value: "collection"},
					{Key: "options", Value: opts},
					{Key: "info", Value: bson.D{{Key: "readOnly", Value: false}, {Key: "uuid", Value: bson.Binary{Subtype: 4, Data: c.uuid[:]}}}},
					{Key: "idIndex", Value: bson.Raw(c.indexes[0].spec)},
				}
			}
			doc, err := marshal(info)
			if err != nil {
				return nil, err
			}
			if m.Matches(doc) {
				docs = append(docs, doc)
			}
		}
	}
	cur := &cursor{ns: r.db + ".$cmd.listCollections"}
	return e.cursorReplyLocked(cur, "firstBatch", batch{events: docs}), nil
}

func handleListDatabases(s *Server, r *request) (bsoncore.Document, error) {
	nameOnly, _ := r.arg("nameOnly").BooleanOK()
	e := s.db
	e.mu.Lock()
	names := make([]string, 0, len(e.dbs))
	for n := range e.dbs {
		names = append(names, n)
	}
	e.mu.Unlock()
	sort.Strings(names)
	arr := bson.A{}
	for _, n := range names {
		if nameOnly {
			arr = append(arr, bson.D{{Key: "name", Value: n}})
		} else {
			arr = append(arr, bson.D{{Key: "name", Value: n}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}})
		}
	}
	d := bson.D{{Key: "databases", Value: arr}}
	if !nameOnly {
		d = append(d, bson.E{Key: "totalSize", Value: int64(0)})
	}
	return marshal(d)
}

func init() {
	register(handleRenameCollection, "renameCollection")
	register(handleCollMod, "collMod")
}

// splitNS splits "db.coll" at the first dot.
func splitNS(ns string) (db, coll string, ok bool) {
	db, coll, ok = strings.Cut(ns, ".")
	return db, coll, ok && db != "" && coll != ""
}

func handleRenameCollection(s *Server, r *request) (bsoncore.Document, error) {
	if r.db != "admin" {
		return nil, codes.Errorf(codes.Unauthorized, "renameCollection may only be run against the admin database.")
	}
	from, ok := r.arg(r.name).StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'renameCollection' is the wrong type, expected a string")
	}
	to, ok := r.arg("to").StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'to' is missing or not a string")
	}
	fromDB, fromColl, ok1 := splitNS(from)
	toDB, toColl, ok2 := splitNS(to)
	if !ok1 {
		return nil, codes.Errorf(codes.InvalidNamespace, "Invalid source namespace: %s", from)
	}
	if !ok2 {
		return nil, codes.Errorf(codes.InvalidNamespace, "Invalid target namespace: %s", to)
	}
	if err := validCollName(toDB, toColl); err != nil {
		return nil, err
	}
	dropTarget, _ := r.arg("dropTarget").BooleanOK()
	if from == to {
		return nil, codes.Errorf(codes.IllegalOperation, "Can't rename a collection to itself")
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(fromDB, fromColl)
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "Source collection %s does not exist", from)
	}
	opDesc := bsoncore.NewDocumentBuilder().AppendDocument("to",
		bsoncore.NewDocumentBuilder().AppendString("db", toDB).AppendString("coll", toColl).Build())
	if t := e.collLocked(toDB, toColl); t != nil {
		if !dropTarget {
			return nil, codes.Errorf(codes.NamespaceExists, "target namespace exists")
		}
		// Like a real server, the target goes away inside the rename: one
		// change-log entry carrying the dropped collection's UUID.
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
	return nil, nil
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

func handleCollMod(s *Server, r *request) (bsoncore.Document, error) {
	name, err := r.collName()
	if err != nil {
		return nil, err
	}
	var images *bool
	var index bsoncore.Document
	elems, _ := r.Cmd.Elements()
	for _, el := range elems {
		switch k := el.Key(); k {
		case r.name, "$db", "lsid", "txnNumber", "$clusterTime", "$readPreference", "writeConcern", "comment", "maxTimeMS", "apiVersion", "apiStrict", "apiDeprecationErrors", "backpressure":
		case "changeStreamPreAndPostImages":
			d, ok := el.Value().DocumentOK()
			if !ok {
				return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'collMod.changeStreamPreAndPostImages' must be an object")
			}
			b, ok := d.Lookup("enabled").BooleanOK()
			if !ok {
				return nil, codes.Errorf(codes.FailedToParse, "BSON field 'collMod.changeStreamPreAndPostImages.enabled' is missing but a required field")
			}
			images = &b
		case "index":
			d, ok := el.Value().DocumentOK()
			if !ok {
				return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'collMod.index' must be an object")
			}
			index = d
		case "validator", "validationLevel", "validationAction", "viewOn", "pipeline", "expireAfterSeconds", "timeseries", "cappedSize", "cappedMax", "recordIdsReplicated", "dryRun":
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support collMod with %s", k)
		default:
			return nil, codes.Errorf(codes.InvalidOptions, "unknown option to collMod: %s", k)
		}
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.collLocked(r.db, name)
	if c == nil {
		return nil, codes.Errorf(codes.NamespaceNotFound, "ns does not exist: %s.%s", r.db, name)
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
	return marshal(reply)
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
