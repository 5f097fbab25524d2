package mongotest

import (
	"sort"

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
			return nil, errorf(codeTypeMismatch, "BSON field 'create.changeStreamPreAndPostImages' must be an object")
		}
		images, _ = d.Lookup("enabled").BooleanOK()
	}
	for _, k := range []string{"capped", "timeseries", "viewOn", "clusteredIndex", "encryptedFields"} {
		if v := r.arg(k); v.Type != 0 {
			if b, ok := v.BooleanOK(); ok && !b {
				continue
			}
			return nil, errorf(codeNotImplemented, "mongotest does not support create with %s", k)
		}
	}
	e := s.db
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.collLocked(r.db, name) != nil {
		return nil, errorf(codeNamespaceExists, "Collection %s.%s already exists.", r.db, name)
	}
	if err := validCollName(r.db, name); err != nil {
		return nil, err
	}
	c := newCollection(r.db, name)
	c.preAndPostImages = images
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
	var m matcher = andMatcher(nil)
	if v := r.arg("filter"); v.Type != 0 {
		fd, ok := v.DocumentOK()
		if !ok {
			return nil, errorf(codeTypeMismatch, "listCollections filter must be an object")
		}
		var err error
		if m, err = compileFilter(fd); err != nil {
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
			if nameOnly {
				info = bson.D{{Key: "name", Value: n}, {Key: "type", Value: "collection"}}
			} else {
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
			if m.matches(doc) {
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
