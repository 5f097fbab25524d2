package query

import (
	"crypto/md5"
	"encoding/binary"
	"hash"
	"math"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// HashedIndexKey is MongoDB's hashed-index hash of v (seed 0), the value of
// {$toHashedIndexKey: v} and the key of a hashed index: the first 8 bytes,
// read as a little-endian int64, of the MD5 of the seed (int32 LE) followed
// by v's canonical form. That form is the canonical type of the value
// (int32 LE: numbers 10, strings 15, objects 20, arrays 25, ...), then for
// a number the value converted to int64 (doubles truncated, NaN as 0,
// overflows clamped, and the double 2^63 as the lowest int64, as the server
// keeps for compatibility), for a document or array each element in turn
// (canonical type, field name with its NUL, value) and the end-of-object
// element (canonical type 0, no name),
// and for any other type the BSON value bytes as they are. Decimal128 and
// JavaScript code with scope are refused: mongotest does not convert them.
func HashedIndexKey(v bsoncore.Value) (int64, error) {
	return hashSeeded(v, 0)
}

func hashSeeded(v bsoncore.Value, seed int32) (int64, error) {
	h := md5.New()
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(seed))
	h.Write(b[:4])
	if err := hashValue(h, v, "", false, 0); err != nil {
		return 0, err
	}
	sum := h.Sum(nil)
	return int64(binary.LittleEndian.Uint64(sum[:8])), nil
}

// canonicalType is the server's canonical sort-order type of t.
func canonicalType(t bsoncore.Type) (int32, bool) {
	switch t {
	case bsoncore.TypeMinKey:
		return -1, true
	case bsoncore.TypeMaxKey:
		return 127, true
	case bsoncore.TypeUndefined:
		return 0, true
	case bsoncore.TypeNull:
		return 5, true
	case bsoncore.TypeDouble, bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDecimal128:
		return 10, true
	case bsoncore.TypeString, bsoncore.TypeSymbol:
		return 15, true
	case bsoncore.TypeEmbeddedDocument:
		return 20, true
	case bsoncore.TypeArray:
		return 25, true
	case bsoncore.TypeBinary:
		return 30, true
	case bsoncore.TypeObjectID:
		return 35, true
	case bsoncore.TypeBoolean:
		return 40, true
	case bsoncore.TypeDateTime:
		return 45, true
	case bsoncore.TypeTimestamp:
		return 47, true
	case bsoncore.TypeRegex:
		return 50, true
	case bsoncore.TypeDBPointer:
		return 55, true
	case bsoncore.TypeJavaScript:
		return 60, true
	case bsoncore.TypeCodeWithScope:
		return 65, true
	}
	return 0, false
}

func hashValue(h hash.Hash, v bsoncore.Value, name string, withName bool, depth int) error {
	if depth > 200 {
		return codes.Errorf(codes.FailedToParse, "$toHashedIndexKey: value nested too deeply")
	}
	ct, ok := canonicalType(v.Type)
	if !ok {
		return codes.Errorf(codes.FailedToParse, "$toHashedIndexKey: invalid BSON type %d", v.Type)
	}
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(ct))
	h.Write(b[:4])
	if withName {
		h.Write([]byte(name))
		h.Write([]byte{0})
	}
	switch v.Type {
	case bsoncore.TypeDouble, bsoncore.TypeInt32, bsoncore.TypeInt64:
		binary.LittleEndian.PutUint64(b[:], uint64(hashLong(v)))
		h.Write(b[:])
	case bsoncore.TypeDecimal128:
		return codes.Errorf(codes.InvalidPipelineOperator, "$toHashedIndexKey of a Decimal128 is not implemented by mongotest")
	case bsoncore.TypeCodeWithScope:
		return codes.Errorf(codes.InvalidPipelineOperator, "$toHashedIndexKey of JavaScript code with scope is not implemented by mongotest")
	case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
		elems, err := bsoncore.Document(v.Data).Elements()
		if err != nil {
			return codes.Errorf(codes.FailedToParse, "$toHashedIndexKey: %v", err)
		}
		for _, el := range elems {
			if err := hashValue(h, el.Value(), el.Key(), true, depth+1); err != nil {
				return err
			}
		}
		// The end-of-object element: canonical type 0, no name, no value.
		binary.LittleEndian.PutUint32(b[:4], 0)
		h.Write(b[:4])
	default:
		h.Write(v.Data)
	}
	return nil
}

// hashLong converts a number to int64 as the server does for hashing.
func hashLong(v bsoncore.Value) int64 {
	switch v.Type {
	case bsoncore.TypeInt32:
		return int64(v.Int32())
	case bsoncore.TypeInt64:
		return v.Int64()
	}
	d := v.Double()
	switch {
	case math.IsNaN(d):
		return 0
	case d == 1<<63:
		return math.MinInt64 // kept by the server for compatibility
	case d > 1<<63:
		return math.MaxInt64
	case d <= -(1 << 63):
		return math.MinInt64
	}
	return int64(d)
}

// hashedKeyExpr is {$toHashedIndexKey: <expression>}; a missing value
// hashes as null.
type hashedKeyExpr struct{ x aggExpr }

func (e hashedKeyExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	v, ok, err := e.x.eval(root)
	if err != nil {
		return bsoncore.Value{}, false, err
	}
	if !ok {
		v = bsoncore.Value{Type: bsoncore.TypeNull}
	}
	n, err := HashedIndexKey(v)
	if err != nil {
		return bsoncore.Value{}, false, err
	}
	return bsoncore.Value{Type: bsoncore.TypeInt64, Data: bsoncore.AppendInt64(nil, n)}, true, nil
}
