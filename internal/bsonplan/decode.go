package bsonplan

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BSON type bytes.
const (
	tDouble     = 0x01
	tStringT    = 0x02
	tDocument   = 0x03
	tArray      = 0x04
	tBinary     = 0x05
	tUndefined  = 0x06
	tObjectIDT  = 0x07
	tBoolean    = 0x08
	tDateTime   = 0x09
	tNull       = 0x0A
	tRegex      = 0x0B
	tDBPointer  = 0x0C
	tJavaScript = 0x0D
	tSymbol     = 0x0E
	tCodeScope  = 0x0F
	tInt32      = 0x10
	tTimestamp  = 0x11
	tInt64      = 0x12
	tDecimal128 = 0x13
	tMinKey     = 0xFF
	tMaxKey     = 0x7F
)

func le32(b []byte) int32  { return int32(binary.LittleEndian.Uint32(b)) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// stringSize is the size of a BSON string value at the start of rest: 0 if
// it is not a well-formed one.
func stringSize(rest []byte) int {
	if len(rest) < 5 {
		return 0
	}
	l := int(le32(rest))
	if l < 1 || l > len(rest)-4 || rest[4+l-1] != 0 {
		return 0
	}
	return 4 + l
}

// valueSize is the size of the value of BSON type t at the start of rest,
// or false if rest does not start with a well-formed one. It is stricter
// than the driver's reader: what it refuses goes to the driver, which then
// decides.
func valueSize(t byte, rest []byte) (int, bool) {
	n := 0
	switch t {
	case tDouble, tDateTime, tTimestamp, tInt64:
		n = 8
	case tInt32:
		n = 4
	case tObjectIDT:
		n = 12
	case tBoolean:
		n = 1
	case tDecimal128:
		n = 16
	case tUndefined, tNull, tMinKey, tMaxKey:
		return 0, true
	case tStringT, tJavaScript, tSymbol:
		n = stringSize(rest)
		return n, n > 0
	case tDocument, tArray:
		if len(rest) < 5 {
			return 0, false
		}
		n = int(le32(rest))
		if n < 5 || n > len(rest) || rest[n-1] != 0 {
			return 0, false
		}
		return n, true
	case tBinary:
		if len(rest) < 5 {
			return 0, false
		}
		l := int(le32(rest))
		if l < 0 || l > len(rest)-5 {
			return 0, false
		}
		return 5 + l, true
	case tRegex:
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return 0, false
		}
		j := bytes.IndexByte(rest[i+1:], 0)
		if j < 0 {
			return 0, false
		}
		return i + j + 2, true
	case tDBPointer:
		n = stringSize(rest)
		if n == 0 || n+12 > len(rest) {
			return 0, false
		}
		return n + 12, true
	case tCodeScope:
		if len(rest) < 4 {
			return 0, false
		}
		n = int(le32(rest))
		if n < 14 || n > len(rest) {
			return 0, false
		}
		return n, true
	default:
		return 0, false
	}
	return n, n <= len(rest)
}

// elems reads the elements of a document or array whose length and
// terminator are already checked.
type elems struct {
	doc      []byte
	pos, end int
	bad      bool // a malformed element was met
}

func newElems(doc []byte) elems { return elems{doc: doc, pos: 4, end: len(doc) - 1} }

// next returns the next element's key, type and value bytes; false at the
// end or at a malformed element (then bad is set).
func (e *elems) next() (key []byte, t byte, v []byte, ok bool) {
	if e.pos >= e.end {
		return nil, 0, nil, false
	}
	doc := e.doc
	t = doc[e.pos]
	pos := e.pos + 1
	i := bytes.IndexByte(doc[pos:e.end], 0)
	if i < 0 {
		e.bad = true
		return nil, 0, nil, false
	}
	key = doc[pos : pos+i]
	pos += i + 1
	n, ok := valueSize(t, doc[pos:e.end])
	if !ok {
		e.bad = true
		return nil, 0, nil, false
	}
	e.pos = pos + n
	return key, t, doc[pos:e.pos], true
}

// integer is the BSON value v of type t as the driver's integer decoders
// read it before their range checks; false where the driver would fail
// (or, for doubles out of int64's range, behave per platform).
func integer(t byte, v []byte) (int64, bool) {
	switch t {
	case tInt32:
		return int64(le32(v)), true
	case tInt64:
		return int64(le64(v)), true
	case tDouble:
		f := math.Float64frombits(le64(v))
		if math.Floor(f) != f || f >= 1<<63 || f < -(1<<63) {
			return 0, false
		}
		return int64(f), true
	case tBoolean:
		switch v[0] {
		case 0:
			return 0, true
		case 1:
			return 1, true
		}
	}
	return 0, false
}

// decode decodes the BSON value v of type t into the zero value at p.
func (n *node) decode(p unsafe.Pointer, t byte, v []byte) bool {
	if t == tNull || t == tUndefined {
		return true // every planned decoder sets the zero value
	}
	switch n.kind {
	case kindString:
		if t != tStringT && t != tSymbol {
			return false
		}
		*(*string)(p) = string(v[4 : len(v)-1])
	case kindInt:
		i, ok := integer(t, v)
		if !ok {
			return false
		}
		switch n.size {
		case 1:
			if i < math.MinInt8 || i > math.MaxInt8 {
				return false
			}
			*(*int8)(p) = int8(i)
		case 2:
			if i < math.MinInt16 || i > math.MaxInt16 {
				return false
			}
			*(*int16)(p) = int16(i)
		case 4:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return false
			}
			*(*int32)(p) = int32(i)
		case 8:
			*(*int64)(p) = i
		default:
			return false
		}
	case kindUint:
		i, ok := integer(t, v)
		if !ok || i < 0 {
			return false
		}
		switch n.size {
		case 1:
			if i > math.MaxUint8 {
				return false
			}
			*(*uint8)(p) = uint8(i)
		case 2:
			if i > math.MaxUint16 {
				return false
			}
			*(*uint16)(p) = uint16(i)
		case 4:
			if i > math.MaxUint32 {
				return false
			}
			*(*uint32)(p) = uint32(i)
		case 8:
			*(*uint64)(p) = uint64(i)
		default:
			return false
		}
	case kindFloat64, kindFloat32:
		var f float64
		switch t {
		case tDouble:
			f = math.Float64frombits(le64(v))
		case tInt32:
			f = float64(le32(v))
		case tInt64:
			f = float64(int64(le64(v)))
		case tBoolean:
			switch v[0] {
			case 0:
			case 1:
				f = 1
			default:
				return false
			}
		default:
			return false
		}
		if n.kind == kindFloat64 {
			*(*float64)(p) = f
			break
		}
		if float64(float32(f)) != f {
			return false // the driver fails unless truncating; let it decide
		}
		*(*float32)(p) = float32(f)
	case kindBool:
		var b bool
		switch t {
		case tBoolean:
			switch v[0] {
			case 0:
			case 1:
				b = true
			default:
				return false
			}
		case tInt32:
			b = le32(v) != 0
		case tInt64:
			b = le64(v) != 0
		case tDouble:
			b = math.Float64frombits(le64(v)) != 0
		default:
			return false
		}
		*(*bool)(p) = b
	case kindTime:
		if t != tDateTime {
			return false
		}
		dt := int64(le64(v))
		*(*time.Time)(p) = time.Unix(dt/1000, dt%1000*1000000).UTC()
	case kindObjectID:
		if t != tObjectIDT {
			return false
		}
		copy((*bson.ObjectID)(p)[:], v)
	case kindDecimal:
		if t != tDecimal128 {
			return false
		}
		*(*bson.Decimal128)(p) = bson.NewDecimal128(le64(v[8:16]), le64(v[0:8]))
	case kindRaw:
		if t != tDocument && t != tArray {
			return false
		}
		*(*bson.Raw)(p) = bytes.Clone(v)
	case kindBytes:
		var data []byte
		switch t {
		case tBinary:
			if v[4] != 0x00 {
				return false // other subtypes: the driver refuses or reads 0x02's inner length
			}
			data = make([]byte, len(v)-5)
			copy(data, v[5:])
		case tStringT, tSymbol:
			data = make([]byte, len(v)-5)
			copy(data, v[4:len(v)-1])
		default:
			return false
		}
		*(*[]byte)(p) = data
	case kindPointer:
		np := reflect.New(n.elem.typ).UnsafePointer()
		if !n.elem.decode(np, t, v) {
			return false
		}
		*(*unsafe.Pointer)(p) = np
	case kindStruct:
		if t != tDocument {
			return false
		}
		return n.decodeStruct(p, v)
	case kindSlice:
		return t == tArray && n.decodeSlice(p, v)
	case kindArray:
		return t == tArray && n.decodeArray(p, v)
	case kindMap:
		if t != tDocument {
			return false
		}
		m := reflect.MakeMap(n.typ)
		if !decodeMapElements(m, n.elem, v) {
			return false
		}
		reflect.NewAt(n.typ, p).Elem().Set(m)
	default:
		return false
	}
	return true
}

// decodeMapElements sets m[key] for each element of doc.
func decodeMapElements(m reflect.Value, elem *node, doc []byte) bool {
	keyType := m.Type().Key()
	it := newElems(doc)
	for {
		key, t, v, ok := it.next()
		if !ok {
			return !it.bad
		}
		ev := reflect.New(elem.typ)
		if !elem.decode(ev.UnsafePointer(), t, v) {
			return false
		}
		k := reflect.ValueOf(string(key))
		if keyType != tString {
			k = k.Convert(keyType)
		}
		m.SetMapIndex(k, ev.Elem())
	}
}

// lookup finds the field the key names, as the driver's struct codec does:
// the exact name, then the key in lower case. hint is the field after the
// last one found: documents usually list fields in order.
func (n *node) lookup(key []byte, hint int) *field {
	if hint < len(n.fields) && n.fields[hint].name == string(key) {
		return n.fields[hint]
	}
	if f, ok := n.byName[string(key)]; ok {
		return f
	}
	for _, c := range key {
		if c >= 0x80 || ('A' <= c && c <= 'Z') {
			return n.byName[strings.ToLower(string(key))]
		}
	}
	return nil
}

func (n *node) decodeStruct(p unsafe.Pointer, doc []byte) bool {
	var seenSmall uint64
	var seenLarge []bool
	if len(n.fields) > 64 {
		seenLarge = make([]bool, len(n.fields))
	}
	hint := 0
	var inlined reflect.Value
	it := newElems(doc)
	for {
		key, t, v, ok := it.next()
		if !ok {
			return !it.bad
		}
		f := n.lookup(key, hint)
		if f == nil {
			if n.inlineMap == nil {
				continue // the driver skips fields the struct does not name
			}
			if !inlined.IsValid() {
				inlined = reflect.NewAt(n.inlineMap.typ, unsafe.Add(p, n.inlineMap.off)).Elem()
				inlined.Set(reflect.MakeMap(n.inlineMap.typ))
			}
			ev := reflect.New(n.inlineMap.elem.typ)
			if !n.inlineMap.elem.decode(ev.UnsafePointer(), t, v) {
				return false
			}
			inlined.SetMapIndex(reflect.ValueOf(string(key)), ev.Elem())
			continue
		}
		// A repeated field would be decoded into what the first one left
		// (merging structs and maps): the driver's business.
		if seenLarge != nil {
			if seenLarge[f.index] {
				return false
			}
			seenLarge[f.index] = true
		} else {
			bit := uint64(1) << f.index
			if seenSmall&bit != 0 {
				return false
			}
			seenSmall |= bit
		}
		hint = f.index + 1
		if !f.node.decode(f.addr(p), t, v) {
			return false
		}
	}
}

// count is the number of elements of a BSON array, or -1 if malformed.
func count(doc []byte) int {
	n := 0
	it := newElems(doc)
	for {
		if _, _, _, ok := it.next(); !ok {
			break
		}
		n++
	}
	if it.bad {
		return -1
	}
	return n
}

type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

func (n *node) decodeSlice(p unsafe.Pointer, doc []byte) bool {
	c := count(doc)
	if c < 0 {
		return false
	}
	s := reflect.MakeSlice(n.typ, c, c) // the driver's slice is exactly as long, never nil
	data := s.UnsafePointer()
	size := n.elem.typ.Size()
	it := newElems(doc)
	for i := 0; ; i++ {
		_, t, v, ok := it.next()
		if !ok {
			break
		}
		if !n.elem.decode(unsafe.Add(data, uintptr(i)*size), t, v) {
			return false
		}
	}
	*(*sliceHeader)(p) = sliceHeader{data: data, len: c, cap: c}
	return true
}

func (n *node) decodeArray(p unsafe.Pointer, doc []byte) bool {
	length := n.typ.Len()
	size := n.elem.typ.Size()
	it := newElems(doc)
	for i := 0; ; i++ {
		_, t, v, ok := it.next()
		if !ok {
			return !it.bad
		}
		if i >= length {
			return false // the driver: more elements than fit
		}
		if !n.elem.decode(unsafe.Add(p, uintptr(i)*size), t, v) {
			return false
		}
	}
}
