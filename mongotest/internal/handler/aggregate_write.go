package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The write stages of a collection aggregation, $out and $merge, which
// must come last. Their writes go through the engine's insert, update and
// delete, so they are logged and emit change events like any write.
//
//	{$out: "coll"} | {$out: {db, coll}}
//	{$merge: "coll" | {into: "coll" | {db, coll}, on: "_id",
//	  whenMatched: "merge" | "replace" | "keepExisting" | "fail",
//	  whenNotMatched: "insert" | "discard" | "fail"}}
//
// $out replaces the target's documents with the results: mongotest
// deletes the old ones and inserts the new ones (with their events),
// where a real server renames a temporary collection over the target.
// $merge on fields other than _id, and a pipeline for whenMatched, are
// refused by name.

// writeStage is a parsed $out or $merge.
type writeStage struct {
	out                         bool
	db, coll                    string
	whenMatched, whenNotMatched string
}

// splitWriteStage removes a trailing $out or $merge from the pipeline.
func splitWriteStage(r *request, pipeline bsoncore.Array) (bsoncore.Array, *writeStage, error) {
	vals, err := pipeline.Values()
	if err != nil || len(vals) == 0 {
		return pipeline, nil, nil
	}
	last, ok := vals[len(vals)-1].DocumentOK()
	if !ok {
		return pipeline, nil, nil
	}
	name, _ := bsonutil.FirstKey(last)
	if name != "$out" && name != "$merge" {
		return pipeline, nil, nil
	}
	if rc, ok := r.arg("readConcern").DocumentOK(); ok {
		if level, _ := rc.Lookup("level").StringValueOK(); level == "linearizable" {
			return nil, nil, codes.Errorf(codes.InvalidOptions, "%s cannot be used with a 'linearizable' read concern level", name)
		}
	}
	ws := &writeStage{out: name == "$out", db: r.db, whenMatched: "merge", whenNotMatched: "insert"}
	arg := last.Lookup(name)
	target := arg
	if name == "$merge" {
		if d, ok := arg.DocumentOK(); ok {
			target = d.Lookup("into")
			elems, _ := d.Elements()
			for _, el := range elems {
				switch el.Key() {
				case "into":
				case "on":
					if s, ok := el.Value().StringValueOK(); !ok || s != "_id" {
						return nil, nil, codes.Errorf(codes.NotImplemented, "mongotest does not support $merge on fields other than _id")
					}
				case "whenMatched":
					s, ok := el.Value().StringValueOK()
					if !ok {
						return nil, nil, codes.Errorf(codes.NotImplemented, "mongotest does not support $merge with a whenMatched pipeline")
					}
					ws.whenMatched = s
				case "whenNotMatched":
					ws.whenNotMatched, _ = el.Value().StringValueOK()
				default:
					return nil, nil, codes.Errorf(codes.NotImplemented, "mongotest does not support $merge with %s", el.Key())
				}
			}
		}
	}
	if s, ok := target.StringValueOK(); ok {
		ws.coll = s
	} else if d, ok := target.DocumentOK(); ok {
		ws.db, _ = d.Lookup("db").StringValueOK()
		ws.coll, _ = d.Lookup("coll").StringValueOK()
	}
	if ws.db == "" || ws.coll == "" {
		return nil, nil, codes.Errorf(codes.FailedToParse, "%s needs a target collection", name)
	}
	if !oneOf(ws.whenMatched, "merge", "replace", "keepExisting", "fail") || !oneOf(ws.whenNotMatched, "insert", "discard", "fail") {
		return nil, nil, codes.Errorf(codes.BadValue, "$merge: unknown whenMatched %q or whenNotMatched %q", ws.whenMatched, ws.whenNotMatched)
	}
	idx, out := bsoncore.AppendArrayStart(nil)
	for i, v := range vals[:len(vals)-1] {
		out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(i), v)
	}
	out, _ = bsoncore.AppendArrayEnd(out, idx)
	return bsoncore.Array(out), ws, nil
}

// write stores docs into the stage's target.
func (ws *writeStage) write(e *engine.Engine, docs []bsoncore.Document) error {
	if ws.out {
		if _, _, err := e.Delete(ws.db, ws.coll, []engine.DeleteStmt{{Filter: matchAll{}}}, true); err != nil {
			return err
		}
		_, werrs, err := e.Insert(ws.db, ws.coll, docs, true)
		if err != nil {
			return err
		}
		if len(werrs) > 0 {
			return werrs[0].Err
		}
		return nil
	}
	for _, d := range docs {
		id := d.Lookup("_id")
		if id.Type == 0 {
			return codes.Errorf(codes.NotImplemented, "mongotest does not support $merge of a document without _id")
		}
		q := bsoncore.NewDocumentBuilder().AppendValue("_id", id).Build()
		existing, err := e.Find(ws.db, ws.coll, idMatcher{q}, nil, 0, 1)
		if err != nil {
			if ce := codes.As(err); ce.Code != codes.NamespaceNotFound {
				return err
			}
		}
		if len(existing) == 0 {
			switch ws.whenNotMatched {
			case "discard":
				continue
			case "fail":
				return codes.Errorf(codes.Location13113, "$merge could not find a matching document in the target collection for at least one document in the source collection")
			}
			_, werrs, err := e.Insert(ws.db, ws.coll, []bsoncore.Document{d}, true)
			if err != nil {
				return err
			}
			if len(werrs) > 0 {
				return werrs[0].Err
			}
			continue
		}
		var u bsoncore.Document
		switch ws.whenMatched {
		case "keepExisting":
			continue
		case "fail":
			return codes.Errorf(codes.DuplicateKey, "E11000 duplicate key error collection: %s.%s index: _id_ dup key: { _id: %s }", ws.db, ws.coll, id)
		case "replace":
			u = d
		default: // merge
			u = bsoncore.NewDocumentBuilder().AppendDocument("$set", d).Build()
		}
		st := parseUpdateStmt(bsoncore.NewDocumentBuilder().AppendDocument("q", q).AppendDocument("u", u).Build())
		if _, werrs := e.Update(ws.db, ws.coll, []engine.UpdateStmt{st}, true); len(werrs) > 0 {
			return werrs[0].Err
		}
	}
	return nil
}

// matchAll matches every document.
type matchAll struct{}

func (matchAll) Matches(bsoncore.Document) bool { return true }

// idMatcher matches the document whose _id equals q's.
type idMatcher struct{ q bsoncore.Document }

func (m idMatcher) Matches(d bsoncore.Document) bool {
	a, b := d.Lookup("_id"), m.q.Lookup("_id")
	return a.Type == b.Type && string(a.Data) == string(b.Data)
}
