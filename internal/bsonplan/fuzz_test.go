package bsonplan

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The differential fuzzer: each input makes a Go struct type (with
// reflect.StructOf) and a BSON document shaped after it, with mismatched
// types, nulls, conversions, unknown and repeated keys, keys in other cases
// and, sometimes, a corrupted byte. The plan (falling back to the registry
// where it declines) must give what the registry alone gives: the same
// value, or the same error.
//
//	go test -run '^$' -fuzz FuzzDifferential -fuzztime 10m ./internal/bsonplan/

type myString string
type myInt int16

// gen draws decisions from the fuzzer's bytes (zeros once they run out).
type gen struct {
	b []byte
	i int
}

func (g *gen) byte() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

func (g *gen) n(k int) int { return int(g.byte()) % k }

func (g *gen) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(g.byte())
	}
	return v
}

var leafTypes = []reflect.Type{
	reflect.TypeFor[string](), reflect.TypeFor[myString](), reflect.TypeFor[int](), reflect.TypeFor[int8](),
	reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](), reflect.TypeFor[myInt](),
	reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](),
	reflect.TypeFor[uint64](), reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[bool](),
	tTime, tObjectID, tDecimal, tRaw, tByteSlice,
	// Types a plan refuses, so that the fuzzer crosses the fallback too.
	reflect.TypeFor[any](), reflect.TypeFor[bson.DateTime](), reflect.TypeFor[upperName](),
}

var keyAlphabet = []string{"a", "b", "A", "_id", "ab", "f0", "f1", "F1", "ß", "x"}

func (g *gen) typ(depth int) reflect.Type {
	if depth >= 3 || g.n(3) == 0 {
		return leafTypes[g.n(len(leafTypes))]
	}
	switch g.n(7) {
	case 0:
		return reflect.PointerTo(g.typ(depth + 1))
	case 1:
		return reflect.SliceOf(g.typ(depth + 1))
	case 2:
		return reflect.ArrayOf(g.n(4), g.typ(depth+1))
	case 3:
		return reflect.MapOf(reflect.TypeFor[string](), g.typ(depth+1))
	case 4:
		return reflect.MapOf(reflect.TypeFor[myString](), g.typ(depth+1))
	}
	return g.structType(depth + 1)
}

func (g *gen) structType(depth int) reflect.Type {
	var fields []reflect.StructField
	for i := range g.n(6) {
		f := reflect.StructField{Name: "F" + string(rune('0'+i)), Type: g.typ(depth)}
		key := keyAlphabet[g.n(len(keyAlphabet))]
		switch g.n(10) {
		case 0: // no tag: the lower-cased field name
		case 1:
			f.Tag = reflect.StructTag(`bson:"` + key + `,omitempty"`)
		case 2:
			f.Tag = `bson:"-"`
		case 3, 4:
			f.Tag = `bson:",inline"`
			if g.n(2) == 0 {
				f.Type = g.structType(depth + 1)
				if g.n(2) == 0 {
					f.Type = reflect.PointerTo(f.Type)
				}
			} else if g.n(2) == 0 {
				f.Type = reflect.MapOf(reflect.TypeFor[string](), g.typ(depth+1))
			}
		case 5:
			f.Tag = reflect.StructTag(key) // a bare tag: the driver reads it as the bson tag
		case 6:
			f.Tag = reflect.StructTag(`bson:"` + key + `,truncate"`)
		case 7:
			f.Tag = reflect.StructTag(`json:"` + key + `"`)
		default:
			f.Tag = reflect.StructTag(`bson:"` + key + `"`)
		}
		fields = append(fields, f)
	}
	return reflect.StructOf(fields)
}

// keyed is a key the driver may map to a field of the given type.
type keyed struct {
	key string
	typ reflect.Type
}

// keys lists the keys of struct t, inline fields included, as far as the
// generator needs to aim at them.
func keys(t reflect.Type, out []keyed) []keyed {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, inline, skip := parseTags(sf)
		if skip {
			continue
		}
		if inline {
			it := sf.Type
			if it.Kind() == reflect.Pointer {
				it = it.Elem()
			}
			if it.Kind() == reflect.Struct {
				out = keys(it, out)
				continue
			}
			if it.Kind() == reflect.Map {
				out = append(out, keyed{"extra", it.Elem()})
				continue
			}
		}
		out = append(out, keyed{name, sf.Type})
	}
	return out
}

func appendCString(b []byte, s string) []byte { return append(append(b, s...), 0) }

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)+1))
	return appendCString(b, s)
}

func (g *gen) str() string {
	return strings.Repeat("s", g.n(4)) + string(keyAlphabet[g.n(len(keyAlphabet))])
}

// number returns interesting integers: small ones, and the edges of each
// integer width.
func (g *gen) number() int64 {
	edges := []int64{0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32769, 65535, 65536,
		math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MinInt64}
	if g.n(2) == 0 {
		return edges[g.n(len(edges))]
	}
	return int64(int8(g.byte()))
}

// value returns a BSON value for a field of type t: mostly of a type t
// accepts, sometimes anything.
func (g *gen) value(t reflect.Type, depth int) (byte, []byte) {
	if g.n(6) == 0 || depth > 5 {
		return g.anyValue(depth)
	}
	switch g.n(12) {
	case 0:
		return tNull, nil
	case 1:
		return tUndefined, nil
	}
	switch {
	case t == tTime:
		return tDateTime, binary.LittleEndian.AppendUint64(nil, uint64(g.number()*int64(g.n(1000)+1)))
	case t == tObjectID:
		var oid [12]byte
		oid[g.n(12)] = g.byte()
		return tObjectIDT, oid[:]
	case t == tDecimal:
		return tDecimal128, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, g.u64()), g.u64())
	case t == tRaw:
		return tDocument, g.document(reflect.TypeFor[struct{ A int32 }](), depth+1)
	case t == tByteSlice:
		sub := []byte{0, 0, 2, 4}[g.n(4)]
		data := []byte(g.str())
		v := binary.LittleEndian.AppendUint32(nil, uint32(len(data)))
		return tBinary, append(append(v, sub), data...)
	}
	switch t.Kind() {
	case reflect.String:
		if g.n(5) == 0 {
			return tSymbol, appendString(nil, g.str())
		}
		return tStringT, appendString(nil, g.str())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Bool:
		n := g.number()
		switch g.n(6) {
		case 0:
			return tInt32, binary.LittleEndian.AppendUint32(nil, uint32(n))
		case 1:
			return tInt64, binary.LittleEndian.AppendUint64(nil, uint64(n))
		case 2:
			return tDouble, binary.LittleEndian.AppendUint64(nil, math.Float64bits(float64(n)))
		case 3:
			f := []float64{0.5, -1.5, 1e300, math.Inf(1), math.Inf(-1), math.NaN(), 1 << 63, -(1 << 63), 0.1, 3}[g.n(10)]
			return tDouble, binary.LittleEndian.AppendUint64(nil, math.Float64bits(f))
		case 4:
			return tBoolean, []byte{byte(g.n(3))}
		}
		return tDouble, binary.LittleEndian.AppendUint64(nil, g.u64())
	case reflect.Pointer:
		return g.value(t.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		arr := []byte{0, 0, 0, 0}
		for i := range g.n(5) {
			bt, v := g.value(t.Elem(), depth+1)
			arr = appendCString(append(arr, bt), string(rune('0'+i)))
			arr = append(arr, v...)
		}
		arr = append(arr, 0)
		binary.LittleEndian.PutUint32(arr, uint32(len(arr)))
		return tArray, arr
	case reflect.Map:
		d := []byte{0, 0, 0, 0}
		for range g.n(4) {
			bt, v := g.value(t.Elem(), depth+1)
			d = appendCString(append(d, bt), keyAlphabet[g.n(len(keyAlphabet))])
			d = append(d, v...)
		}
		d = append(d, 0)
		binary.LittleEndian.PutUint32(d, uint32(len(d)))
		return tDocument, d
	case reflect.Struct:
		return tDocument, g.document(t, depth+1)
	}
	return g.anyValue(depth)
}

// anyValue is a value of any BSON type.
func (g *gen) anyValue(depth int) (byte, []byte) {
	switch g.n(21) {
	case 0:
		return tDouble, binary.LittleEndian.AppendUint64(nil, g.u64())
	case 1:
		return tStringT, appendString(nil, g.str())
	case 2:
		if depth > 5 {
			return tDocument, []byte{5, 0, 0, 0, 0}
		}
		return tDocument, g.document(reflect.TypeFor[struct{ A, B int32 }](), depth+1)
	case 3:
		return tArray, []byte{12, 0, 0, 0, tInt32, '0', 0, 1, 0, 0, 0, 0}
	case 4:
		return tBinary, []byte{1, 0, 0, 0, byte(g.n(6)), g.byte()}
	case 5:
		return tUndefined, nil
	case 6:
		return tObjectIDT, make([]byte, 12)
	case 7:
		return tBoolean, []byte{byte(g.n(2))}
	case 8:
		return tDateTime, binary.LittleEndian.AppendUint64(nil, g.u64())
	case 9:
		return tNull, nil
	case 10:
		return tRegex, []byte{'a', 0, 'i', 0}
	case 11:
		return tDBPointer, append(appendString(nil, "c"), make([]byte, 12)...)
	case 12:
		return tJavaScript, appendString(nil, "f()")
	case 13:
		return tSymbol, appendString(nil, g.str())
	case 14:
		cws := binary.LittleEndian.AppendUint32(nil, 0)
		cws = appendString(cws, "f")
		cws = append(cws, 5, 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(cws, uint32(len(cws)))
		return tCodeScope, cws
	case 15:
		return tInt32, binary.LittleEndian.AppendUint32(nil, uint32(g.number()))
	case 16:
		return tTimestamp, binary.LittleEndian.AppendUint64(nil, g.u64())
	case 17:
		return tInt64, binary.LittleEndian.AppendUint64(nil, uint64(g.number()))
	case 18:
		return tDecimal128, make([]byte, 16)
	case 19:
		return tMinKey, nil
	}
	return tMaxKey, nil
}

// document is a BSON document aimed at struct t.
func (g *gen) document(t reflect.Type, depth int) []byte {
	ks := keys(t, nil)
	d := []byte{0, 0, 0, 0}
	for range g.n(8) {
		var k keyed
		switch {
		case len(ks) > 0 && g.n(4) != 0:
			k = ks[g.n(len(ks))]
			if g.n(6) == 0 {
				k.key = strings.ToUpper(k.key)
			}
		default:
			k = keyed{keyAlphabet[g.n(len(keyAlphabet))], leafTypes[g.n(len(leafTypes))]}
		}
		bt, v := g.value(k.typ, depth)
		d = appendCString(append(d, bt), k.key)
		d = append(d, v...)
	}
	d = append(d, 0)
	binary.LittleEndian.PutUint32(d, uint32(len(d)))
	return d
}

// generate makes a type, a document and client BSON options (nil, or
// options that allow plans) from data.
func generate(data []byte) (reflect.Type, []byte, *options.BSONOptions) {
	g := &gen{b: data}
	t := g.structType(0)
	doc := g.document(t, 0)
	corrupt, at, b := g.n(8) == 0, g.n(len(doc)), g.byte()
	var opts *options.BSONOptions
	if bits := g.byte(); bits&1 != 0 {
		opts = &options.BSONOptions{
			AllowTruncatingDoubles: bits&2 != 0,
			BinaryAsSlice:          bits&4 != 0,
			DefaultDocumentM:       bits&8 != 0,
			ObjectIDAsHexString:    bits&16 != 0,
			ZeroMaps:               bits&32 != 0,
			ZeroStructs:            bits&64 != 0,
		}
	}
	// Corrupt a byte, without options only: the reference decoder with
	// options (the driver's streaming reader) allocates whatever length a
	// corrupted header says, gigabytes included.
	if corrupt && opts == nil {
		doc[at] = b
	}
	return t, doc, opts
}

// checkDifferential checks one generated type and document, with a new
// registry and uncached plans: the registry's caches and the plans of the
// many generated types would otherwise grow the fuzzer's memory without
// bound.
func checkDifferential(t *testing.T, data []byte) bool {
	typ, doc, opts := generate(data)
	testCompile = compile
	defer func() { testCompile = Compile }()
	return equivalentWith(t, bson.NewRegistry(), opts, typ, doc)
}

func FuzzDifferential(f *testing.F) {
	for _, seed := range []string{"", "\x05\x01\x02\x03", "order", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDifferential(t, data)
	})
}

// FuzzOrderBytes feeds arbitrary bytes, starting from real Order documents,
// to the plan of the Order type.
func FuzzOrderBytes(f *testing.F) {
	f.Add([]byte(makeOrder(3, 40)))
	f.Add([]byte(makeOrder(0, 0)))
	typ := reflect.TypeFor[order]()
	reg := bson.NewRegistry()
	f.Fuzz(func(t *testing.T, doc []byte) {
		equivalent(t, reg, typ, doc)
	})
}

// TestDifferentialRandom runs the differential check on pseudo-random
// inputs in every test run, and checks that the plan itself decodes a fair
// share of them (so the fuzzer does not only test the fallback).
func TestDifferentialRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, used := 3000, 0
	if testing.Short() {
		n = 300
	}
	if v, err := strconv.Atoi(os.Getenv("BSONPLAN_RANDOM_N")); err == nil {
		n = v // a longer run: BSONPLAN_RANDOM_N=100000
	}
	for range n {
		data := make([]byte, rng.IntN(200))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if checkDifferential(t, data) {
			used++
		}
	}
	t.Logf("the plan decoded %d of %d documents itself", used, n)
	if used < n/10 {
		t.Errorf("the plan decoded only %d of %d documents itself", used, n)
	}
}
