package handler

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func handleCreate(e *engine.Engine, r *request) (bsoncore.Document, error) {
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
	opts := engine.CreateOptions{PreAndPostImages: images}
	if isView {
		opts.ViewOn, opts.Pipeline = viewOn, pipeline
	}
	return nil, e.Create(r.db, name, opts)
}

func handleDrop(e *engine.Engine, r *request) (bsoncore.Document, error) {
	name, err := r.collName()
	if err != nil {
		return nil, err
	}
	d, ok := e.Drop(r.db, name)
	if !ok || d.View {
		// Since 7.0 dropping a missing collection succeeds.
		return nil, nil
	}
	return marshal(bson.D{{Key: "ns", Value: d.NS}, {Key: "nIndexesWas", Value: int32(d.NIndexesWas)}})
}

func handleDropDatabase(e *engine.Engine, r *request) (bsoncore.Document, error) {
	if !e.DropDatabase(r.db) {
		return nil, nil
	}
	return marshal(bson.D{{Key: "dropped", Value: r.db}})
}

func handleListCollections(e *engine.Engine, r *request) (bsoncore.Document, error) {
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
	var docs []bsoncore.Document
	for _, c := range e.Collections(r.db) {
		n := c.Name
		var info bson.D
		switch {
		case nameOnly && c.ViewOn != "":
			info = bson.D{{Key: "name", Value: n}, {Key: "type", Value: "view"}}
		case nameOnly:
			info = bson.D{{Key: "name", Value: n}, {Key: "type", Value: "collection"}}
		case c.ViewOn != "":
			info = bson.D{
				{Key: "name", Value: n},
				{Key: "type", Value: "view"},
				{Key: "options", Value: bson.D{{Key: "viewOn", Value: c.ViewOn}, {Key: "pipeline", Value: bson.Raw(c.ViewPipeline)}}},
				{Key: "info", Value: bson.D{{Key: "readOnly", Value: true}}},
			}
		default:
			opts := bson.D{}
			if c.PreAndPostImages {
				opts = append(opts, bson.E{Key: "changeStreamPreAndPostImages", Value: bson.D{{Key: "enabled", Value: true}}})
			}
			info = bson.D{
				{Key: "name", Value: n},
				{Key: "type", Value: "collection"},
				{Key: "options", Value: opts},
				{Key: "info", Value: bson.D{{Key: "readOnly", Value: false}, {Key: "uuid", Value: bson.Binary{Subtype: 4, Data: c.UUID[:]}}}},
				{Key: "idIndex", Value: bson.Raw(c.IDIndex)},
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
	return engine.CursorReply(0, r.db+".$cmd.listCollections", "firstBatch", docs), nil
}

// handleListDatabases lists the databases whose {name, sizeOnDisk,
// empty} document matches the filter.
func handleListDatabases(e *engine.Engine, r *request) (bsoncore.Document, error) {
	nameOnly, _ := r.arg("nameOnly").BooleanOK()
	filter, err := r.filterArg("filter")
	if err != nil {
		return nil, err
	}
	arr := bson.A{}
	for _, n := range e.DatabaseNames() {
		info, err := bson.Marshal(bson.D{{Key: "name", Value: n}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}})
		if err != nil {
			return nil, err
		}
		if !filter.Matches(info) {
			continue
		}
		if nameOnly {
			arr = append(arr, bson.D{{Key: "name", Value: n}})
		} else {
			arr = append(arr, bson.Raw(info))
		}
	}
	d := bson.D{{Key: "databases", Value: arr}}
	if !nameOnly {
		d = append(d, bson.E{Key: "totalSize", Value: int64(0)})
	}
	return marshal(d)
}

// splitNS splits "db.coll" at the first dot.
func splitNS(ns string) (db, coll string, ok bool) {
	db, coll, ok = strings.Cut(ns, ".")
	return db, coll, ok && db != "" && coll != ""
}

func handleRenameCollection(e *engine.Engine, r *request) (bsoncore.Document, error) {
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
	if err := engine.ValidCollName(toDB, toColl); err != nil {
		return nil, err
	}
	dropTarget, _ := r.arg("dropTarget").BooleanOK()
	if from == to {
		return nil, codes.Errorf(codes.IllegalOperation, "Can't rename a collection to itself")
	}
	return nil, e.Rename(fromDB, fromColl, toDB, toColl, dropTarget)
}

func handleCollMod(e *engine.Engine, r *request) (bsoncore.Document, error) {
	name, err := r.collName()
	if err != nil {
		return nil, err
	}
	var images *bool
	var index bsoncore.Document
	elems, _ := r.cmd.Elements()
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
	reply, err := e.CollMod(r.db, name, images, index)
	if err != nil {
		return nil, err
	}
	return marshal(reply)
}
