package engine

import (
	"encoding/binary"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// uniqueIndex is what enforcing one unique index needs.
type uniqueIndex struct {
	name    string
	fields  [][]string // the key's dotted paths, split
	names   []string   // the key's field names, for the error message
	sparse  bool
	partial query.Matcher // partialFilterExpression; nil when none
}

// uniqueIndexOf returns the unique index of spec, or ok false when the index
// is not unique (or is _id_, which the collection's keys enforce).
func uniqueIndexOf(spec IndexSpec) (ux uniqueIndex, ok bool, err error) {
	if spec.name == "_id_" {
		return ux, false, nil
	}
	if u, _ := spec.spec.Lookup("unique").BooleanOK(); !u {
		return ux, false, nil
	}
	key, _ := spec.spec.Lookup("key").DocumentOK()
	elems, _ := key.Elements()
	ux.name = spec.name
	for _, el := range elems {
		ux.names = append(ux.names, el.Key())
		ux.fields = append(ux.fields, strings.Split(el.Key(), "."))
	}
	ux.sparse, _ = spec.spec.Lookup("sparse").BooleanOK()
	if pf, ok := spec.spec.Lookup("partialFilterExpression").DocumentOK(); ok {
		if ux.partial, err = query.CompileFilter(pf); err != nil {
			return ux, false, err
		}
	}
	return ux, true, nil
}

// keyOf returns the index key of d, or false when d is not in the index
// (sparse and without any key field, or outside the partial filter). A
// missing field indexes as null. An array is indexed as one value, not per
// element: mongotest does not build multikey unique indexes.
func (ux uniqueIndex) keyOf(d bsoncore.Document) (string, bool) {
	if ux.partial != nil && !ux.partial.Matches(d) {
		return "", false
	}
	var b []byte
	present := 0
	for _, path := range ux.fields {
		v, err := d.LookupErr(path...)
		if err != nil {
			v = bsoncore.Value{Type: bsoncore.TypeNull}
		} else {
			present++
		}
		k := bsonutil.ValueKey(v)
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
	}
	if ux.sparse && present == 0 {
		return "", false
	}
	return string(b), true
}

// dupKey describes d's key as a real server's E11000 message does.
func (ux uniqueIndex) dupKey(d bsoncore.Document) string {
	var sb strings.Builder
	sb.WriteString("{ ")
	for i, path := range ux.fields {
		if i > 0 {
			sb.WriteString(", ")
		}
		v, err := d.LookupErr(path...)
		sb.WriteString(ux.names[i])
		sb.WriteString(": ")
		if err != nil {
			sb.WriteString("null")
		} else {
			sb.WriteString(v.String())
		}
	}
	sb.WriteString(" }")
	return sb.String()
}

// uniqueKeys indexes a collection's documents by the keys of its unique
// indexes, so that a write checks for duplicates without a scan. It is
// built on first use and rebuilt when the set of indexes changes;
// collection.put and remove keep it current.
type uniqueKeys struct {
	sig  string              // the unique indexes it was built for
	idx  []uniqueIndex       // those indexes
	keys []map[string]string // per index: index key -> the document's _id key
}

// uniqueSig names c's unique indexes and their specs.
func (c *collection) uniqueSig() string {
	var sb strings.Builder
	for _, spec := range c.indexes {
		if u, _ := spec.spec.Lookup("unique").BooleanOK(); u && spec.name != "_id_" {
			sb.WriteString(spec.name)
			sb.Write(spec.spec)
		}
	}
	return sb.String()
}

// uniques returns c's unique-key index, built for its current indexes.
func (c *collection) uniques() *uniqueKeys {
	sig := c.uniqueSig()
	if c.uniq != nil && c.uniq.sig == sig {
		return c.uniq
	}
	u := &uniqueKeys{sig: sig}
	for _, spec := range c.indexes {
		ux, ok, err := uniqueIndexOf(spec)
		if err != nil || !ok {
			continue
		}
		u.idx = append(u.idx, ux)
		u.keys = append(u.keys, map[string]string{})
	}
	c.uniq = u
	c.each(func(k string, d bsoncore.Document) bool {
		u.add(k, d)
		return true
	})
	return u
}

func (u *uniqueKeys) add(k string, d bsoncore.Document) {
	for i, ux := range u.idx {
		if key, in := ux.keyOf(d); in {
			u.keys[i][key] = k
		}
	}
}

func (u *uniqueKeys) remove(k string, d bsoncore.Document) {
	for i, ux := range u.idx {
		if key, in := ux.keyOf(d); in && u.keys[i][key] == k {
			delete(u.keys[i], key)
		}
	}
}

// uniqueConflict returns the DuplicateKey error a real server gives when d,
// stored under the _id key k, would share the key of one of c's unique
// indexes with another document, or nil.
func (c *collection) uniqueConflict(k string, d bsoncore.Document) *codes.Error {
	if c.uniqueSig() == "" {
		return nil
	}
	u := c.uniques()
	for i, ux := range u.idx {
		key, in := ux.keyOf(d)
		if !in {
			continue
		}
		if other, ok := u.keys[i][key]; ok && other != k {
			return codes.Errorf(codes.DuplicateKey, "E11000 duplicate key error collection: %s index: %s dup key: %s", c.ns(), ux.name, ux.dupKey(d))
		}
	}
	return nil
}

// uniqueViolation returns the error of building the unique index spec over
// c's documents when two of them share a key, or nil.
func (c *collection) uniqueViolation(spec IndexSpec) error {
	ux, ok, err := uniqueIndexOf(spec)
	if err != nil || !ok {
		return err
	}
	seen := map[string]bool{}
	var dup bsoncore.Document
	c.each(func(_ string, d bsoncore.Document) bool {
		key, in := ux.keyOf(d)
		if !in {
			return true
		}
		if seen[key] {
			dup = d
			return false
		}
		seen[key] = true
		return true
	})
	if dup != nil {
		return codes.Errorf(codes.DuplicateKey, "Index build failed: E11000 duplicate key error collection: %s index: %s dup key: %s", c.ns(), ux.name, ux.dupKey(dup))
	}
	return nil
}
