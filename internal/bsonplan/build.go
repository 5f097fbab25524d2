package bsonplan

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// nodeKind is what a node decodes into.
type nodeKind uint8

const (
	kindBool nodeKind = iota + 1
	kindInt
	kindUint
	kindFloat32
	kindFloat64
	kindString
	kindTime
	kindObjectID
	kindDecimal
	kindRaw
	kindBytes
	kindStruct
	kindPointer
	kindSlice
	kindArray
	kindMap
)

// node is the decode plan of one Go type.
type node struct {
	kind nodeKind
	typ  reflect.Type
	size uintptr // kindInt, kindUint: the width in bytes
	elem *node   // kindPointer, kindSlice, kindArray, kindMap: the element

	// kindStruct
	fields    []*field
	byName    map[string]*field
	inlineMap *inlineMap
}

// field is a struct field a document key decodes into, possibly inside
// inline structs.
type field struct {
	name  string
	index int         // position in node.fields
	path  []inlinePtr // inline struct pointers to follow (and allocate) first
	off   uintptr     // offset from the last base
	node  *node
}

// inlinePtr is an inline *struct field: the pointer at off from the current
// base, allocated as a new elem when nil.
type inlinePtr struct {
	off  uintptr
	elem reflect.Type
}

// inlineMap is a struct's inline map: it takes the keys no field names.
type inlineMap struct {
	off  uintptr
	typ  reflect.Type
	elem *node
}

// builder builds the nodes of one type.
type builder struct {
	reg   *bson.Registry
	nodes map[reflect.Type]*node // built or being built (recursive types)
}

func (b *builder) build(t reflect.Type) (*node, bool) {
	if n, ok := b.nodes[t]; ok {
		return n, true
	}
	if t.Kind() == reflect.Interface {
		return nil, false
	}
	same, ofKind := defaultDecoder(b.reg, t)
	if !same {
		return nil, false // the caller's registry decodes t its own way
	}
	n := &node{typ: t}
	if !ofKind {
		switch t {
		case tTime:
			n.kind = kindTime
		case tObjectID:
			n.kind = kindObjectID
		case tDecimal:
			n.kind = kindDecimal
		case tRaw:
			n.kind = kindRaw
		case tByteSlice:
			n.kind = kindBytes
		default:
			return nil, false // a hook (bson.Unmarshaler, ...) or a driver type
		}
		b.nodes[t] = n
		return n, true
	}
	b.nodes[t] = n
	ok := true
	switch t.Kind() {
	case reflect.Bool:
		n.kind = kindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.kind, n.size = kindInt, t.Size()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.kind, n.size = kindUint, t.Size()
	case reflect.Float32:
		n.kind = kindFloat32
	case reflect.Float64:
		n.kind = kindFloat64
	case reflect.String:
		n.kind = kindString
	case reflect.Pointer:
		n.kind = kindPointer
		n.elem, ok = b.build(t.Elem())
	case reflect.Slice:
		n.kind = kindSlice
		n.elem, ok = b.build(t.Elem())
	case reflect.Array:
		n.kind = kindArray
		n.elem, ok = b.build(t.Elem())
	case reflect.Map:
		k := t.Key()
		if k.Kind() != reflect.String || reflect.PointerTo(k).Implements(tKeyUnmarsh) ||
			reflect.PointerTo(k).Implements(tTextUnmarshal) {
			ok = false
			break
		}
		n.kind = kindMap
		n.elem, ok = b.build(t.Elem())
	case reflect.Struct:
		n.kind = kindStruct
		ok = b.buildStruct(n)
	default:
		ok = false
	}
	if !ok {
		return nil, false
	}
	return n, true
}

// described is a field of a struct as the driver's struct codec describes
// it: its key, its inline depth (0 at the top, as len(inline) in the
// driver) and where it is.
type described struct {
	name  string
	order []int // index path, to order fields of one depth
	depth int
	path  []inlinePtr
	off   uintptr
	typ   reflect.Type
	// valueStep: an inline struct value is on the way; panics: an inline
	// struct value comes after an inline pointer, where the driver's
	// getInlineField panics (it sets a new pointer into the struct value).
	valueStep, panics bool
}

// describe lists the fields of struct t the driver's struct codec decodes
// (after its dominance rules), and the index of its inline map field (-1
// if none). It fails where describeStruct returns an error.
func (b *builder) describe(t reflect.Type, seen map[reflect.Type]bool) ([]described, int, bool) {
	if seen[t] {
		return nil, 0, false // inline recursion: not something to plan
	}
	seen[t] = true
	defer delete(seen, t)
	inlineIdx := -1
	var fields []described
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.PkgPath != "" {
			continue // unexported: the default struct codec ignores it
		}
		name, inline, skip := parseTags(sf)
		if skip {
			continue
		}
		if !inline {
			fields = append(fields, described{name: name, order: []int{i}, off: sf.Offset, typ: sf.Type})
			continue
		}
		st := sf.Type
		switch st.Kind() {
		case reflect.Map:
			if inlineIdx >= 0 || st.Key() != tString {
				return nil, 0, false
			}
			inlineIdx = i
			continue
		case reflect.Pointer:
			if st.Elem().Kind() != reflect.Struct {
				return nil, 0, false
			}
		case reflect.Struct:
		default:
			return nil, 0, false
		}
		inner := st
		if st.Kind() == reflect.Pointer {
			inner = st.Elem()
		}
		sub, _, ok := b.describe(inner, seen)
		if !ok {
			return nil, 0, false
		}
		for _, f := range sub {
			g := f
			g.order = append([]int{i}, f.order...)
			if f.depth == 0 {
				g.depth = 2
			} else {
				g.depth = f.depth + 1
			}
			g.valueStep = f.valueStep || st.Kind() == reflect.Struct
			g.panics = f.panics || (st.Kind() == reflect.Pointer && f.valueStep)
			if st.Kind() == reflect.Pointer {
				g.path = append([]inlinePtr{{off: sf.Offset, elem: inner}}, f.path...)
			} else if len(f.path) > 0 {
				g.path = slices.Clone(f.path)
				g.path[0].off += sf.Offset
			} else {
				g.off = f.off + sf.Offset
			}
			fields = append(fields, g)
		}
	}
	slices.SortStableFunc(fields, func(x, y described) int {
		if c := strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		if c := cmp.Compare(x.depth, y.depth); c != 0 {
			return c
		}
		return slices.Compare(x.order, y.order)
	})
	out := fields[:0:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if j-i > 1 && fields[i].depth == fields[i+1].depth {
			return nil, 0, false // the driver: "struct has duplicated key"
		}
		out = append(out, fields[i])
		i = j
	}
	return out, inlineIdx, true
}

func (b *builder) buildStruct(n *node) bool {
	fields, inlineIdx, ok := b.describe(n.typ, map[reflect.Type]bool{})
	if !ok {
		return false
	}
	n.byName = make(map[string]*field, len(fields))
	slices.SortFunc(fields, func(x, y described) int { return slices.Compare(x.order, y.order) })
	for _, d := range fields {
		if d.panics {
			return false // the driver's way is a panic: leave it to the driver
		}
		fn, ok := b.build(d.typ)
		if !ok {
			return false
		}
		f := &field{name: d.name, index: len(n.fields), path: d.path, off: d.off, node: fn}
		n.fields = append(n.fields, f)
		n.byName[d.name] = f
	}
	if inlineIdx >= 0 {
		sf := n.typ.Field(inlineIdx)
		en, ok := b.build(sf.Type.Elem())
		if !ok {
			return false
		}
		n.inlineMap = &inlineMap{off: sf.Offset, typ: sf.Type, elem: en}
	}
	return true
}

// parseTags reads a field's bson tag as the driver's default struct tag
// parser does.
func parseTags(sf reflect.StructField) (name string, inline, skip bool) {
	name = strings.ToLower(sf.Name)
	tag, ok := sf.Tag.Lookup("bson")
	if !ok && !strings.Contains(string(sf.Tag), ":") && len(sf.Tag) > 0 {
		tag = string(sf.Tag)
	}
	if tag == "-" {
		return "", false, true
	}
	for i, part := range strings.Split(tag, ",") {
		if i == 0 && part != "" {
			name = part
		}
		if part == "inline" {
			inline = true
		}
	}
	return name, inline, false
}

// addr returns the address of f in the struct at p, allocating the inline
// struct pointers on the way as the driver does.
func (f *field) addr(p unsafe.Pointer) unsafe.Pointer {
	for _, s := range f.path {
		pp := (*unsafe.Pointer)(unsafe.Add(p, s.off))
		if *pp == nil {
			*pp = reflect.New(s.elem).UnsafePointer()
		}
		p = *pp
	}
	return unsafe.Add(p, f.off)
}
