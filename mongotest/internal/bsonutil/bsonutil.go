// Package bsonutil holds the BSON helpers every part of mongotest uses:
// value comparison in the server's order, numbers, array keys, document
// keys and deep validation.
package bsonutil

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// arrayKeys caches the small array indexes as strings.
var arrayKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = strconv.Itoa(i)
	}
	return k
}()

// ArrayKey returns the key of array index i.
func ArrayKey(i int) string {
	if i < len(arrayKeys) {
		return arrayKeys[i]
	}
	return strconv.Itoa(i)
}

// AppendArrayKey appends the decimal key of array index i.
func AppendArrayKey(dst []byte, i int) []byte {
	if i < len(arrayKeys) {
		return append(dst, arrayKeys[i]...)
	}
	return strconv.AppendInt(dst, int64(i), 10)
}

// AppendArrayDocHeader appends the type and key of array element i, a
// document the caller appends next.
func AppendArrayDocHeader(dst []byte, i int) []byte {
	dst = append(dst, byte(bsoncore.TypeEmbeddedDocument))
	dst = AppendArrayKey(dst, i)
	return append(dst, 0)
}

// maxBSONDepth is the deepest nesting a real server accepts.
const maxBSONDepth = 200

// Validate checks a document and everything nested in it, so that
// handlers can read any field without meeting truncated values.
// bsoncore's Document.Validate checks only the top level.
func Validate(d bsoncore.Document) error { return validateNested(d, 0) }

func validateNested(d bsoncore.Document, depth int) error {
	if depth > maxBSONDepth {
		return fmt.Errorf("BSON nesting deeper than %d levels", maxBSONDepth)
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if int(int32(len(d))) != len(d) || int32(binary.LittleEndian.Uint32(d)) != int32(len(d)) {
		return fmt.Errorf("document length %d but %d bytes", int32(binary.LittleEndian.Uint32(d)), len(d))
	}
	elems, err := d.Elements()
	if err != nil {
		return err
	}
	for _, el := range elems {
		v := el.Value()
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
			if err := validateNested(v.Data, depth+1); err != nil {
				return err
			}
		case bsoncore.TypeCodeWithScope:
			_, scope, ok := v.CodeWithScopeOK()
			if !ok {
				return fmt.Errorf("field %q: invalid code with scope", el.Key())
			}
			if err := validateNested(scope, depth+1); err != nil {
				return err
			}
		case bsoncore.TypeString, bsoncore.TypeJavaScript, bsoncore.TypeSymbol:
			if n := len(v.Data); n < 5 || v.Data[n-1] != 0 {
				return fmt.Errorf("field %q: string without its terminating NUL", el.Key())
			}
		case bsoncore.TypeBoolean:
			if v.Data[0] > 1 {
				return fmt.Errorf("field %q: boolean byte %d", el.Key(), v.Data[0])
			}
		}
	}
	return nil
}

// AsInt64 reads any numeric BSON value as an int64.
func AsInt64(v bsoncore.Value) (int64, bool) {
	switch v.Type {
	case bsoncore.TypeInt32:
		return int64(v.Int32()), true
	case bsoncore.TypeInt64:
		return v.Int64(), true
	case bsoncore.TypeDouble:
		f := v.Double()
		if f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

// TypeName returns the name of a BSON type as a server error message spells it.
func TypeName(t bsoncore.Type) string {
	for name, n := range TypeAliases {
		if n == -1 && t == bsoncore.TypeMinKey || n >= 0 && bsoncore.Type(byte(n)) == t {
			return name
		}
	}
	return t.String()
}

// DocKey returns the storage key of a document's _id.
func DocKey(d bsoncore.Document) (string, bool) {
	v, err := d.LookupErr("_id")
	if err != nil {
		return "", false
	}
	return ValueKey(v), true
}

// ValueKey encodes a value so that values a query treats as equal share a
// key: numbers of every type compare by value.
func ValueKey(v bsoncore.Value) string {
	switch v.Type {
	case bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDouble:
		f, _ := NumberOf(v)
		var b [9]byte
		b[0] = 'n'
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			b[0] = 'i'
			binary.BigEndian.PutUint64(b[1:], uint64(int64(f)))
		} else {
			binary.BigEndian.PutUint64(b[1:], math.Float64bits(f))
		}
		return string(b[:])
	}
	return string(append([]byte{byte(v.Type)}, v.Data...))
}

// NumberOf returns a numeric value as float64.
func NumberOf(v bsoncore.Value) (float64, bool) {
	switch v.Type {
	case bsoncore.TypeInt32:
		return float64(v.Int32()), true
	case bsoncore.TypeInt64:
		return float64(v.Int64()), true
	case bsoncore.TypeDouble:
		return v.Double(), true
	case bsoncore.TypeDecimal128:
		h, l, _ := v.Decimal128OK()
		x, err := strconv.ParseFloat(bson.NewDecimal128(h, l).String(), 64)
		if err == nil {
			return x, true
		}
	}
	return 0, false
}

// TypeAliases maps $type names to BSON type numbers.
var TypeAliases = map[string]int{
	"double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6,
	"objectId": 7, "bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12,
	"javascript": 13, "symbol": 14, "javascriptWithScope": 15, "int": 16,
	"timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}

// MaxObjectSize is the largest document a server accepts or returns (16 MiB).
const MaxObjectSize = 16 * 1024 * 1024

// FirstKey returns the first key of a document: the name of a command
// or of a pipeline stage. It reports false for an empty document.
func FirstKey(cmd bsoncore.Document) (string, bool) {
	if len(cmd) <= 5 {
		return "", false
	}
	e, err := cmd.IndexErr(0)
	if err != nil {
		return "", false
	}
	return e.Key(), true
}
