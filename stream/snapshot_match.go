package stream

import (
	"go.mongodb.org/mongo-driver/v2/bson"
)

// nsFilter is what the first $match stage of a stream's pipeline says of
// the namespaces it lets through: a nil set means any.
type nsFilter struct {
	dbs, colls map[string]bool
}

// namespaceFilter reads the conditions on "ns.db" and "ns.coll" of the
// pipeline's first stage when it is a $match: an equality with a string,
// or $in with strings. The stage's conditions are all required (a $match
// document is a conjunction), so a namespace that fails these can have no
// event through the stream, and the snapshot need not read it. Anything
// else (no $match first, $or, $regex, ...) leaves the filter open.
func namespaceFilter(pipeline any) nsFilter {
	b, err := bson.Marshal(bson.D{{Key: "p", Value: pipeline}})
	if err != nil {
		return nsFilter{}
	}
	stages, ok := bson.Raw(b).Lookup("p").ArrayOK()
	if !ok {
		return nsFilter{}
	}
	vals, err := stages.Values()
	if err != nil || len(vals) == 0 {
		return nsFilter{}
	}
	first, ok := vals[0].DocumentOK()
	if !ok {
		return nsFilter{}
	}
	match, ok := first.Lookup("$match").DocumentOK()
	if !ok {
		return nsFilter{}
	}
	return nsFilter{dbs: stringsOf(match.Lookup("ns.db")), colls: stringsOf(match.Lookup("ns.coll"))}
}

// stringsOf returns the set a condition allows: {"x"} for "x", the strings
// of {$in: [...]} when every one is a string; nil for anything else.
func stringsOf(v bson.RawValue) map[string]bool {
	if s, ok := v.StringValueOK(); ok {
		return map[string]bool{s: true}
	}
	doc, ok := v.DocumentOK()
	if !ok {
		return nil
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "$in" {
		return nil
	}
	arr, ok := elems[0].Value().ArrayOK()
	if !ok {
		return nil
	}
	vals, err := arr.Values()
	if err != nil {
		return nil
	}
	set := make(map[string]bool, len(vals))
	for _, x := range vals {
		s, ok := x.StringValueOK()
		if !ok {
			return nil
		}
		set[s] = true
	}
	return set
}

// allows reports whether the filter lets events of db.coll through.
func (f nsFilter) allows(db, coll string) bool {
	return (f.dbs == nil || f.dbs[db]) && (f.colls == nil || f.colls[coll])
}
