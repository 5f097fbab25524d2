package query

import (
	"bytes"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// mdoc is a mutable document that updates work on: ordered fields whose
// values are *mdoc, *marr or a leaf bsoncore.Value. Stored documents stay
// immutable BSON; an update parses one into an mdoc, changes it and
// encodes a new document.
type MutableDoc struct {
	keys []string
	vals []any
}

// marr is a mutable array.
type marr struct {
	elems []any
}

// toM converts a BSON value into its mutable form.
func toM(v bsoncore.Value) any {
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument:
		d, _ := v.DocumentOK()
		return DocToMutable(d)
	case bsoncore.TypeArray:
		a, _ := v.ArrayOK()
		vals, _ := a.Values()
		out := &marr{elems: make([]any, len(vals))}
		for i, e := range vals {
			out.elems[i] = toM(e)
		}
		return out
	}
	return v
}

// DocToMutable returns a mutable copy of d.
func DocToMutable(d bsoncore.Document) *MutableDoc {
	elems, _ := d.Elements()
	out := &MutableDoc{keys: make([]string, len(elems)), vals: make([]any, len(elems))}
	for i, el := range elems {
		out.keys[i] = el.Key()
		out.vals[i] = toM(el.Value())
	}
	return out
}

// index returns the position of key k, or -1.
func (d *MutableDoc) index(k string) int {
	for i, key := range d.keys {
		if key == k {
			return i
		}
	}
	return -1
}

// Get returns the value of field k.
func (d *MutableDoc) Get(k string) (any, bool) {
	if i := d.index(k); i >= 0 {
		return d.vals[i], true
	}
	return nil, false
}

// Set replaces k in place or appends it.
func (d *MutableDoc) Set(k string, v any) {
	if i := d.index(k); i >= 0 {
		d.vals[i] = v
		return
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

// Del removes field k and reports whether it was there.
func (d *MutableDoc) Del(k string) bool {
	i := d.index(k)
	if i < 0 {
		return false
	}
	d.keys = append(d.keys[:i], d.keys[i+1:]...)
	d.vals = append(d.vals[:i], d.vals[i+1:]...)
	return true
}

func appendM(dst []byte, key string, v any) []byte {
	switch x := v.(type) {
	case *MutableDoc:
		idx, out := bsoncore.AppendDocumentElementStart(dst, key)
		for i, k := range x.keys {
			out = appendM(out, k, x.vals[i])
		}
		out, _ = bsoncore.AppendDocumentEnd(out, idx)
		return out
	case *marr:
		idx, out := bsoncore.AppendArrayElementStart(dst, key)
		for i, e := range x.elems {
			out = appendM(out, bsonutil.ArrayKey(i), e)
		}
		out, _ = bsoncore.AppendArrayEnd(out, idx)
		return out
	case bsoncore.Value:
		return bsoncore.AppendValueElement(dst, key, x)
	}
	return bsoncore.AppendNullElement(dst, key)
}

// Bytes encodes the document.
func (d *MutableDoc) Bytes() bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(nil)
	for i, k := range d.keys {
		out = appendM(out, k, d.vals[i])
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// ValueOfM encodes a mutable value as a BSON value, for comparisons.
func ValueOfM(v any) bsoncore.Value {
	switch x := v.(type) {
	case *MutableDoc:
		return bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: x.Bytes()}
	case *marr:
		idx, out := bsoncore.AppendArrayStart(nil)
		for i, e := range x.elems {
			out = appendM(out, bsonutil.ArrayKey(i), e)
		}
		out, _ = bsoncore.AppendArrayEnd(out, idx)
		return bsoncore.Value{Type: bsoncore.TypeArray, Data: out}
	case bsoncore.Value:
		return x
	}
	return bsoncore.Value{Type: bsoncore.TypeNull}
}

// sameM tells whether two values are the same BSON bytes.
func sameM(a, b any) bool {
	va, vb := ValueOfM(a), ValueOfM(b)
	return va.Type == vb.Type && bytes.Equal(va.Data, vb.Data)
}

// typeNameM returns the BSON type name of a value, as error messages say it.
func typeNameM(v any) string {
	switch v.(type) {
	case *MutableDoc:
		return "object"
	case *marr:
		return "array"
	case bsoncore.Value:
		return bsonutil.TypeName(v.(bsoncore.Value).Type)
	}
	return "missing"
}

// lookupM follows a dotted path of field names and array positions,
// returning the value or false when the path does not exist.
func lookupM(v any, path []string) (any, bool) {
	for _, c := range path {
		switch x := v.(type) {
		case *MutableDoc:
			child, ok := x.Get(c)
			if !ok {
				return nil, false
			}
			v = child
		case *marr:
			i, ok := arrayIndex(c)
			if !ok || i >= len(x.elems) {
				return nil, false
			}
			v = x.elems[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// MutableDocOf returns a document holding the one field key: v.
func MutableDocOf(key string, v bsoncore.Value) *MutableDoc {
	return &MutableDoc{keys: []string{key}, vals: []any{v}}
}
