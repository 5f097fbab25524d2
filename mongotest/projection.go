package mongotest

import (
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// projection is a compiled inclusion or exclusion projection, as find,
// findAndModify's fields and the $project and $unset stages use it.
type projection struct {
	exclude bool
	paths   [][]string
	// excludeID drops _id from an inclusion projection ({_id: 0}).
	excludeID bool
}

// compileProjection parses {field: 0|1|true|false, …}. Computed fields and
// projection operators are not supported and are errors naming them.
func compileProjection(d bsoncore.Document) (*projection, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, errorf(codeFailedToParse, "projection: %v", err)
	}
	p := &projection{}
	mode := 0 // 1 inclusion, -1 exclusion
	var idMode int
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		if strings.HasPrefix(k, "$") || strings.Contains(k, ".$") {
			return nil, errorf(codeNotImplemented, "mongotest does not support the projection operator in '%s'", k)
		}
		var include bool
		switch {
		case v.Type == bsoncore.TypeBoolean:
			include = v.Boolean()
		case typeBracket(v.Type) == 10:
			f, _ := numberOf(v)
			include = f != 0
		default:
			if d, ok := v.DocumentOK(); ok {
				if first, _ := commandName(d); strings.HasPrefix(first, "$") {
					return nil, errorf(codeNotImplemented, "mongotest does not support the projection operator %s (on field '%s')", first, k)
				}
			}
			return nil, errorf(codeNotImplemented, "mongotest does not support computed projection fields such as '%s'", k)
		}
		if k == "_id" {
			if include {
				idMode = 1
			} else {
				idMode = -1
			}
			continue
		}
		want := 1
		if !include {
			want = -1
		}
		if mode != 0 && mode != want {
			if want == -1 {
				return nil, errorf(codeLocation31254, "Cannot do exclusion on field %s in inclusion projection", k)
			}
			return nil, errorf(codeLocation31253, "Cannot do inclusion on field %s in exclusion projection", k)
		}
		mode = want
		for _, q := range p.paths {
			if pathCollides(q, strings.Split(k, ".")) {
				return nil, errorf(codeLocation31250, "Path collision at %s", k)
			}
		}
		p.paths = append(p.paths, strings.Split(k, "."))
	}
	switch {
	case mode == -1:
		p.exclude = true
		if idMode == -1 {
			p.paths = append(p.paths, []string{"_id"})
		}
	case mode == 1:
		if idMode == -1 {
			p.excludeID = true
		} else {
			p.paths = append(p.paths, []string{"_id"})
		}
	default: // only _id was named
		if idMode == -1 {
			p.exclude = true
			p.paths = append(p.paths, []string{"_id"})
		} else {
			p.paths = append(p.paths, []string{"_id"})
		}
	}
	return p, nil
}

func pathCollides(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// projTree is the set of projected paths as a tree; a nil child marks a
// whole field.
type projTree map[string]projTree

func (p *projection) tree() projTree {
	t := projTree{}
	for _, path := range p.paths {
		cur := t
		for i, c := range path {
			if i == len(path)-1 {
				cur[c] = nil
				break
			}
			next, ok := cur[c]
			if !ok || next == nil {
				if ok && next == nil {
					break // an ancestor is already whole
				}
				next = projTree{}
				cur[c] = next
			}
			cur = next
		}
	}
	return t
}

// apply returns the projected copy of doc.
func (p *projection) apply(doc *mdoc) *mdoc {
	t := p.tree()
	if p.exclude {
		return excludeDoc(doc, t)
	}
	return includeDoc(doc, t)
}

// applyBytes projects an encoded document.
func (p *projection) applyBytes(d bsoncore.Document) bsoncore.Document {
	if p == nil {
		return d
	}
	return p.apply(docToM(d)).bytes()
}

func includeDoc(d *mdoc, t projTree) *mdoc {
	out := &mdoc{}
	for i, k := range d.keys {
		sub, ok := t[k]
		if !ok {
			continue
		}
		if sub == nil {
			out.set(k, cloneM(d.vals[i]))
			continue
		}
		switch x := d.vals[i].(type) {
		case *mdoc:
			out.set(k, includeDoc(x, sub))
		case *marr:
			out.set(k, includeArr(x, sub))
		}
	}
	return out
}

func includeArr(a *marr, t projTree) *marr {
	out := &marr{}
	for _, e := range a.elems {
		switch x := e.(type) {
		case *mdoc:
			out.elems = append(out.elems, includeDoc(x, t))
		case *marr:
			out.elems = append(out.elems, includeArr(x, t))
		}
	}
	return out
}

func excludeDoc(d *mdoc, t projTree) *mdoc {
	out := &mdoc{}
	for i, k := range d.keys {
		sub, ok := t[k]
		switch {
		case !ok:
			out.set(k, cloneM(d.vals[i]))
		case sub == nil:
		default:
			switch x := d.vals[i].(type) {
			case *mdoc:
				out.set(k, excludeDoc(x, sub))
			case *marr:
				out.set(k, excludeArr(x, sub))
			default:
				out.set(k, x)
			}
		}
	}
	return out
}

func excludeArr(a *marr, t projTree) *marr {
	out := &marr{}
	for _, e := range a.elems {
		switch x := e.(type) {
		case *mdoc:
			out.elems = append(out.elems, excludeDoc(x, t))
		case *marr:
			out.elems = append(out.elems, excludeArr(x, t))
		default:
			out.elems = append(out.elems, x)
		}
	}
	return out
}

// sortKey is one field of a sort specification.
type sortKey struct {
	path []string
	dir  int
}

const codeLocation15974 = 15974

// parseSort parses {field: 1|-1, …}.
func parseSort(d bsoncore.Document) ([]sortKey, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, errorf(codeFailedToParse, "sort: %v", err)
	}
	keys := make([]sortKey, 0, len(elems))
	for _, el := range elems {
		v := el.Value()
		if sd, ok := v.DocumentOK(); ok {
			first, _ := commandName(sd)
			return nil, errorf(codeNotImplemented, "mongotest does not support sorting by %s on '%s'", first, el.Key())
		}
		n, ok := numberOf(v)
		if !ok || (n != 1 && n != -1) {
			return nil, errorf(codeLocation15974, "Illegal key in $sort specification: %s: %s", el.Key(), v)
		}
		keys = append(keys, sortKey{path: strings.Split(el.Key(), "."), dir: int(n)})
	}
	return keys, nil
}

// sortValue is a document's key for one sort field: for an array the
// smallest element ascending and the largest descending, null when
// missing.
func sortValue(d bsoncore.Document, k sortKey) bsoncore.Value {
	if d == nil {
		return bsoncore.Value{Type: bsoncore.TypeNull}
	}
	cs := pathValues(d, k.path)
	var best bsoncore.Value
	have := false
	for _, c := range cs {
		v := c.v
		if v.Type == bsoncore.TypeArray {
			// An array sorts by its elements; an empty one below null.
			arr, _ := v.ArrayOK()
			if vals, _ := arr.Values(); len(vals) > 0 {
				continue
			}
			v = bsoncore.Value{Type: bsoncore.TypeUndefined}
		}
		if v.Type == 0 {
			v = bsoncore.Value{Type: bsoncore.TypeNull}
		}
		if !have || compareValues(v, best)*k.dir < 0 {
			best, have = v, true
		}
	}
	if !have {
		return bsoncore.Value{Type: bsoncore.TypeNull}
	}
	return best
}

// compareBySort orders two documents by a sort specification.
func compareBySort(a, b bsoncore.Document, keys []sortKey) int {
	for _, k := range keys {
		if c := compareValues(sortValue(a, k), sortValue(b, k)); c != 0 {
			return c * k.dir
		}
	}
	return 0
}
