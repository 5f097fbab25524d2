package bsonplan

import (
	"reflect"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// pristine is a registry with the driver's defaults only. A type is planned
// only where the caller's registry resolves it to the same decoder as
// pristine does, and pristine resolves it to the decoder of its kind (or to
// one of the few driver types a plan knows).
var pristine = bson.NewRegistry()

var (
	tTime          = reflect.TypeFor[time.Time]()
	tObjectID      = reflect.TypeFor[bson.ObjectID]()
	tDecimal       = reflect.TypeFor[bson.Decimal128]()
	tRaw           = reflect.TypeFor[bson.Raw]()
	tByteSlice     = reflect.TypeFor[[]byte]()
	tByte          = reflect.TypeFor[byte]()
	tString        = reflect.TypeFor[string]()
	tUnmarshaler   = reflect.TypeFor[bson.Unmarshaler]()
	tValueUnmarsh  = reflect.TypeFor[bson.ValueUnmarshaler]()
	tKeyUnmarsh    = reflect.TypeFor[bson.KeyUnmarshaler]()
	tTextUnmarshal = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// kindSamples are unnamed types that the driver's registry decodes with
// the decoder of their kind.
var kindSamples = map[reflect.Kind]reflect.Type{
	reflect.Bool:    reflect.TypeFor[bool](),
	reflect.Int:     reflect.TypeFor[int](),
	reflect.Int8:    reflect.TypeFor[int8](),
	reflect.Int16:   reflect.TypeFor[int16](),
	reflect.Int32:   reflect.TypeFor[int32](),
	reflect.Int64:   reflect.TypeFor[int64](),
	reflect.Uint:    reflect.TypeFor[uint](),
	reflect.Uint8:   reflect.TypeFor[uint8](),
	reflect.Uint16:  reflect.TypeFor[uint16](),
	reflect.Uint32:  reflect.TypeFor[uint32](),
	reflect.Uint64:  reflect.TypeFor[uint64](),
	reflect.Float32: reflect.TypeFor[float32](),
	reflect.Float64: reflect.TypeFor[float64](),
	reflect.String:  reflect.TypeFor[string](),
	reflect.Struct:  reflect.TypeFor[struct{}](),
	reflect.Pointer: reflect.TypeFor[*int](),
	reflect.Slice:   reflect.TypeFor[[]int](),
	reflect.Array:   reflect.TypeFor[[1]int](),
	reflect.Map:     reflect.TypeFor[map[string]int](),
}

// defaultDecoder reports whether reg decodes t with the driver's default
// decoder, and whether that decoder is the one of t's kind (false for the
// driver's own types such as bson.D or time.Time, and for hooks such as
// bson.Unmarshaler).
func defaultDecoder(reg *bson.Registry, t reflect.Type) (same, ofKind bool) {
	got, err1 := reg.LookupDecoder(t)
	want, err2 := pristine.LookupDecoder(t)
	if err1 != nil || err2 != nil || !sameValue(reflect.ValueOf(got), reflect.ValueOf(want), 0) {
		return false, false
	}
	sample, ok := kindSamples[t.Kind()]
	if !ok {
		return true, false
	}
	kindDec, err := pristine.LookupDecoder(sample)
	if err != nil {
		return true, false
	}
	return true, sameValue(reflect.ValueOf(want), reflect.ValueOf(kindDec), 0)
}

var tSyncMap = reflect.TypeFor[sync.Map]()

// sameValue reports whether two decoders are the same: the same type, the
// same functions and the same settings. Caches (sync.Map) are ignored.
func sameValue(a, b reflect.Value, depth int) bool {
	if depth > 8 || a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Func:
		return a.Pointer() == b.Pointer()
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.Pointer() == b.Pointer() || sameValue(a.Elem(), b.Elem(), depth+1)
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem(), depth+1)
	case reflect.Struct:
		if a.Type() == tSyncMap {
			return true
		}
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.String:
		return a.String() == b.String()
	}
	return false // maps, slices, channels: not in the driver's decoders; unknown
}
