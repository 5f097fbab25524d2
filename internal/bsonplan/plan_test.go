package bsonplan

import (
	stdbytes "bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type order struct {
	ID       bson.ObjectID `bson:"_id"`
	Customer string        `bson:"customer"`
	Status   string        `bson:"status"`
	Total    float64       `bson:"total"`
	Created  time.Time     `bson:"created"`
	Lines    []line        `bson:"lines"`
	Note     string        `bson:"note"`
}

type line struct {
	SKU   string  `bson:"sku"`
	Qty   int32   `bson:"qty"`
	Price float64 `bson:"price"`
}

func makeOrder(lines, note int) bson.Raw {
	o := order{
		ID:       bson.NewObjectID(),
		Customer: "customer-000042",
		Status:   "paid",
		Total:    42.99,
		Created:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Note:     strings.Repeat("n", note),
	}
	for j := range lines {
		o.Lines = append(o.Lines, line{SKU: fmt.Sprintf("sku-%06d", j), Qty: int32(j%5 + 1), Price: 9.99})
	}
	raw, err := bson.Marshal(o)
	if err != nil {
		panic(err)
	}
	return raw
}

// registryDecode decodes doc into a new *T with the registry alone; the
// driver panics on some inline layouts, and panicked says so.
func registryDecode(reg *bson.Registry, opts *options.BSONOptions, t reflect.Type, doc []byte) (v reflect.Value, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	v = reflect.New(t)
	if opts == nil {
		err = bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}.UnmarshalWithRegistry(reg, v.Interface())
		return v, err, false
	}
	if declaresPastEnd(doc) {
		// The streaming reader allocates a string's or binary's declared
		// length before it reads it: the 1.7 GB inner length of an old
		// binary in a 19-byte document took 4 s and killed a fuzz worker. Such a document is
		// decoded from memory instead; the plan must decline it either
		// way, and then both sides of the comparison come from here.
		err = bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}.UnmarshalWithRegistry(reg, v.Interface())
		return v, err, false
	}
	// As the driver's ChangeStream.Decode does with client BSON options.
	dec := bson.NewDecoder(bson.NewDocumentReader(stdbytes.NewReader(doc)))
	if opts.AllowTruncatingDoubles {
		dec.AllowTruncatingDoubles()
	}
	if opts.BinaryAsSlice {
		dec.BinaryAsSlice()
	}
	if opts.DefaultDocumentM {
		dec.DefaultDocumentM()
	}
	if opts.ObjectIDAsHexString {
		dec.ObjectIDAsHexString()
	}
	if opts.ZeroMaps {
		dec.ZeroMaps()
	}
	if opts.ZeroStructs {
		dec.ZeroStructs()
	}
	dec.SetRegistry(reg)
	return v, dec.Decode(v.Interface()), false
}

// declaresPastEnd reports whether a string, binary (or the length inside
// a binary of the old subtype 2), document or array in doc declares a
// length that runs past the end of doc. It reads as far as
// the elements make sense and stops at the first it cannot size.
func declaresPastEnd(doc []byte) bool {
	past := false
	var walk func(b []byte) // b: a document's bytes, length prefix included
	walk = func(b []byte) {
		pos := 4
		for pos < len(b)-1 && !past {
			t := b[pos]
			end := stdbytes.IndexByte(b[pos+1:], 0)
			if end < 0 {
				return
			}
			pos += 2 + end // past the type, the key and its terminator
			length := func(at int) (int, bool) {
				if at+4 > len(b) {
					return 0, false
				}
				n := int(int32(uint32(b[at]) | uint32(b[at+1])<<8 | uint32(b[at+2])<<16 | uint32(b[at+3])<<24))
				if n < 0 || at+n > len(doc) {
					past = n > 0
					return 0, false
				}
				return n, true
			}
			switch t {
			case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol
				n, ok := length(pos)
				if !ok {
					return
				}
				pos += 4 + n
			case 0x05: // binary
				n, ok := length(pos)
				if !ok {
					return
				}
				if pos+4 < len(b) && b[pos+4] == 0x02 { // the old binary subtype: a length inside
					if _, ok := length(pos + 5); !ok {
						return
					}
				}
				pos += 5 + n
			case 0x03, 0x04: // document, array
				n, ok := length(pos)
				if !ok || pos+n > len(b) {
					past = past || ok
					return
				}
				walk(b[pos : pos+n])
				pos += n
			case 0x0F: // code with scope: its length, a string, a document
				n, ok := length(pos)
				if !ok || pos+n > len(b) {
					past = past || ok
					return
				}
				code, ok := length(pos + 4)
				if !ok || pos+8+code > pos+n {
					return
				}
				walk(b[pos+8+code : pos+n])
				pos += n
			case 0x0C: // DBPointer: a string and an ObjectID
				n, ok := length(pos)
				if !ok {
					return
				}
				pos += 4 + n + 12
			case 0x01, 0x09, 0x11, 0x12: // double, datetime, timestamp, int64
				pos += 8
			case 0x10: // int32
				pos += 4
			case 0x08: // bool
				pos++
			case 0x07: // ObjectID
				pos += 12
			case 0x13: // decimal128
				pos += 16
			case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, max key, min key
			default: // regex, DBPointer, unknown: not sized here
				return
			}
		}
	}
	if len(doc) >= 5 {
		walk(doc)
	}
	return past
}

// equivalent fails t unless the plan, falling back to the registry where it
// declines (as its users do), decodes doc into a T as reg alone does. It
// reports whether the plan decoded doc itself.
func equivalent(t *testing.T, reg *bson.Registry, typ reflect.Type, doc []byte) bool {
	t.Helper()
	return equivalentWith(t, reg, nil, typ, doc)
}

// testCompile is how equivalent gets plans: Compile, or for the fuzzers,
// which make new types and registries all the time, compile (whose
// results, unlike the cache's, the garbage collector can take back).
var testCompile = Compile

// equivalentWith is equivalent under client BSON options opts.
func equivalentWith(t *testing.T, reg *bson.Registry, opts *options.BSONOptions, typ reflect.Type, doc []byte) bool {
	t.Helper()
	if !OptionsAllow(opts) {
		t.Fatalf("options %+v rule plans out", opts)
	}
	want, wantErr, panicked := registryDecode(reg, opts, typ, doc)
	got := reflect.New(typ)
	p := testCompile(reg, typ)
	used := p != nil && p.Decode(doc, got.Interface())
	if panicked {
		if used {
			t.Fatalf("type %v, doc %v: the driver panics, the plan decoded it", typ, bson.Raw(doc))
		}
		return false // the caller's fallback panics as the driver does
	}
	var gotErr error
	if !used {
		if !got.Elem().IsZero() {
			t.Fatalf("type %v, doc %v: a declined Decode left a value behind", typ, bson.Raw(doc))
		}
		got, gotErr, _ = registryDecode(reg, opts, typ, doc)
	}
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("type %v, doc %v: plan error %v, registry error %v (plan used: %v)", typ, bson.Raw(doc), gotErr, wantErr, used)
	}
	if wantErr == nil && !same(got, want) {
		t.Fatalf("type %v, doc %v (plan used: %v):\nplan     %#v\nregistry %#v", typ, bson.Raw(doc), used, got.Elem().Interface(), want.Elem().Interface())
	}
	return used
}

func TestOrder(t *testing.T) {
	reg := bson.NewRegistry()
	p := Compile(reg, reflect.TypeFor[order]())
	if p == nil {
		t.Fatal("no plan for order")
	}
	for _, doc := range []bson.Raw{makeOrder(3, 40), makeOrder(30, 2200), makeOrder(0, 0)} {
		if !equivalent(t, reg, reflect.TypeFor[order](), doc) {
			t.Errorf("plan declined %v", doc)
		}
	}
}

func doc(t *testing.T, v any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Conversions and shapes the plan makes itself, each compared with the
// registry.
func TestPlannedConversions(t *testing.T) {
	type inner struct {
		A int64 `bson:"a"`
	}
	type withInline struct {
		X     string `bson:"x"`
		inner `bson:",inline"`
		Ptr   *inner         `bson:",inline"`
		Rest  map[string]int `bson:",inline"`
	}
	type all struct {
		I8    int8
		I16   int16
		I32   int32
		I     int
		U8    uint8
		U16   uint16
		U32   uint32
		U64   uint64
		U     uint
		F32   float32
		F64   float64
		B     bool
		S     string
		T     time.Time
		OID   bson.ObjectID
		Dec   bson.Decimal128
		Raw   bson.Raw
		Bytes []byte
		P     *string
		PP    **int32
		Arr   [2]int
		Sl    []string
		M     map[string]float64
		N     inner
		Lower string `bson:"lower"`
	}
	tests := []struct {
		name string
		typ  reflect.Type
		doc  any
		used bool // the plan decodes it itself
	}{
		{"int32 into int64 and narrower", reflect.TypeFor[all](), kv("i8", int32(-5), "i16", int32(300), "i32", int64(7), "i", int32(9)), true},
		{"integral double into int", reflect.TypeFor[all](), kv("i", 12.0, "u64", 3.0), true},
		{"bool into int and float", reflect.TypeFor[all](), kv("i", true, "f64", true), true},
		{"numbers into bool", reflect.TypeFor[all](), kv("b", int32(2)), true},
		{"int into float", reflect.TypeFor[all](), kv("f64", int64(1<<53), "f32", int32(3)), true},
		{"null and undefined into everything", reflect.TypeFor[all](), kv("s", nil, "t", nil, "p", nil, "sl", nil, "m", nil, "n", bson.Undefined{}, "raw", nil, "arr", nil), true},
		{"empty array and document", reflect.TypeFor[all](), kv("sl", bson.A{}, "m", bson.D{}, "raw", bson.D{}), true},
		{"pointers", reflect.TypeFor[all](), kv("p", "x", "pp", int32(3)), true},
		{"short array", reflect.TypeFor[all](), kv("arr", bson.A{int32(1)}), true},
		{"bytes from binary and string", reflect.TypeFor[all](), kv("bytes", bson.Binary{Data: []byte{1, 2}}), true},
		{"bytes from empty string", reflect.TypeFor[all](), kv("bytes", ""), true},
		{"symbol into string", reflect.TypeFor[all](), kv("s", bson.Symbol("sym")), true},
		{"keys in another case", reflect.TypeFor[all](), kv("S", "upper", "LOWER", "x", "Unknown", int32(1)), true},
		{"unknown fields skipped", reflect.TypeFor[all](), kv("zz", kv("deep", bson.A{1, 2}), "s", "x"), true},
		{"inline struct, pointer and map", reflect.TypeFor[withInline](), kv("x", "x", "a", int32(1), "other", int32(2)), true},
		{"inline pointer untouched", reflect.TypeFor[withInline](), kv("x", "x"), true},
		{"double with a fraction into int", reflect.TypeFor[all](), kv("i", 1.5), false},
		{"overflow", reflect.TypeFor[all](), kv("i8", int32(200)), false},
		{"negative into uint", reflect.TypeFor[all](), kv("u32", int32(-1)), false},
		{"float32 that does not fit", reflect.TypeFor[all](), kv("f32", 0.1), false},
		{"wrong type", reflect.TypeFor[all](), kv("s", int32(1)), false},
		{"array too long", reflect.TypeFor[all](), kv("arr", bson.A{1, 2, 3}), false},
		{"duplicate key", reflect.TypeFor[all](), kv("n", kv("a", int32(1)), "n", bson.D{}), false},
		{"binary subtype 2", reflect.TypeFor[all](), kv("bytes", bson.Binary{Subtype: 2, Data: []byte{1}}), false},
		{"string into time", reflect.TypeFor[all](), kv("t", "2020-01-01T00:00:00Z"), false},
	}
	reg := bson.NewRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if used := equivalent(t, reg, tt.typ, doc(t, tt.doc)); used != tt.used {
				t.Errorf("plan used %v, want %v", used, tt.used)
			}
		})
	}
}

// malformed BSON always goes to the driver.
func TestMalformedGoesToTheDriver(t *testing.T) {
	good := makeOrder(2, 5)
	reg := bson.NewRegistry()
	typ := reflect.TypeFor[order]()
	for i := range len(good) {
		for _, b := range []byte{0, 1, 0x7f, 0xff} {
			bad := clone(good)
			bad[i] = b
			equivalent(t, reg, typ, bad)
		}
		equivalent(t, reg, typ, good[:i])
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// kv is a bson.D of alternating keys and values.
func kv(pairs ...any) bson.D {
	var d bson.D
	for i := 0; i+1 < len(pairs); i += 2 {
		d = append(d, bson.E{Key: pairs[i].(string), Value: pairs[i+1]})
	}
	return d
}

// same is reflect.DeepEqual, except that floats compare by their bits (so
// NaN equals NaN).
func same(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() || (a.IsValid() && a.Type() != b.Type()) {
		return false
	}
	if !a.IsValid() {
		return true
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Slice, reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		if a.Kind() == reflect.Map {
			for _, k := range a.MapKeys() {
				if !same(a.MapIndex(k), b.MapIndex(k)) {
					return false
				}
			}
			return true
		}
		fallthrough
	case reflect.Array:
		for i := range a.Len() {
			if !same(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				return reflect.DeepEqual(a.Interface(), b.Interface())
			}
		}
		for i := range a.NumField() {
			if !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
