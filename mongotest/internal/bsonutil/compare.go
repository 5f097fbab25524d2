package bsonutil

import (
	"bytes"
	"cmp"
	"math"
	"math/big"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// TypeBracket returns the canonical sort rank of a BSON type, as MongoDB
// orders values of different types: MinKey < null < numbers < strings <
// documents < arrays < binary < ObjectId < bool < date < timestamp < regex
// < … < MaxKey. Types of one bracket compare by value.
func TypeBracket(t bsoncore.Type) int {
	switch t {
	case bsoncore.TypeMinKey:
		return -1
	case 0, bsoncore.TypeUndefined:
		return 0
	case bsoncore.TypeNull:
		return 5
	case bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDouble, bsoncore.TypeDecimal128:
		return 10
	case bsoncore.TypeString, bsoncore.TypeSymbol:
		return 15
	case bsoncore.TypeEmbeddedDocument:
		return 20
	case bsoncore.TypeArray:
		return 25
	case bsoncore.TypeBinary:
		return 30
	case bsoncore.TypeObjectID:
		return 35
	case bsoncore.TypeBoolean:
		return 40
	case bsoncore.TypeDateTime:
		return 45
	case bsoncore.TypeTimestamp:
		return 47
	case bsoncore.TypeRegex:
		return 50
	case bsoncore.TypeDBPointer:
		return 55
	case bsoncore.TypeJavaScript:
		return 60
	case bsoncore.TypeCodeWithScope:
		return 65
	case bsoncore.TypeMaxKey:
		return 127
	}
	return 100
}

// CompareValues orders two values as MongoDB sorts and compares them:
// first by type bracket, then by value (numbers of every type by numeric
// value, strings by bytes, documents and arrays element by element).
func CompareValues(a, b bsoncore.Value) int {
	ba, bb := TypeBracket(a.Type), TypeBracket(b.Type)
	if ba != bb {
		return cmp.Compare(ba, bb)
	}
	switch ba {
	case -1, 0, 5, 127:
		return 0
	case 10:
		return compareNumbers(a, b)
	case 15:
		sa, _ := StringOf(a)
		sb, _ := StringOf(b)
		return cmp.Compare(sa, sb)
	case 20, 25:
		da, _ := asDocBytes(a)
		db, _ := asDocBytes(b)
		return compareDocs(da, db)
	case 30:
		sta, xa, _ := a.BinaryOK()
		stb, xb, _ := b.BinaryOK()
		if len(xa) != len(xb) {
			return cmp.Compare(len(xa), len(xb))
		}
		if sta != stb {
			return cmp.Compare(int(sta), int(stb))
		}
		return bytes.Compare(xa, xb)
	case 35:
		return bytes.Compare(a.Data, b.Data)
	case 40:
		x, _ := a.BooleanOK()
		y, _ := b.BooleanOK()
		return cmp.Compare(b2i(x), b2i(y))
	case 45:
		x, _ := a.DateTimeOK()
		y, _ := b.DateTimeOK()
		return cmp.Compare(x, y)
	case 47:
		ta, ia, _ := a.TimestampOK()
		tb, ib, _ := b.TimestampOK()
		if ta != tb {
			return cmp.Compare(int64(ta), int64(tb))
		}
		return cmp.Compare(int64(ia), int64(ib))
	case 50:
		pa, oa, _ := a.RegexOK()
		pb, ob, _ := b.RegexOK()
		if c := cmp.Compare(pa, pb); c != 0 {
			return c
		}
		return cmp.Compare(oa, ob)
	}
	return bytes.Compare(a.Data, b.Data)
}

// ValuesEqual compares two values as a query does: numbers by value,
// documents field by field in order.
func ValuesEqual(a, b bsoncore.Value) bool {
	return CompareValues(a, b) == 0
}

// StringOf returns the text of a string or symbol value.
func StringOf(v bsoncore.Value) (string, bool) {
	if s, ok := v.StringValueOK(); ok {
		return s, true
	}
	if s, ok := v.SymbolOK(); ok {
		return s, true
	}
	return "", false
}

func asDocBytes(v bsoncore.Value) (bsoncore.Document, bool) {
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
		d, _, ok := bsoncore.ReadDocument(v.Data)
		return d, ok
	}
	return nil, false
}

// compareDocs compares two documents (or arrays) element by element: the
// type bracket of the value, then the field name, then the value; a prefix
// sorts first.
func compareDocs(a, b bsoncore.Document) int {
	ea, _ := a.Elements()
	eb, _ := b.Elements()
	for i := 0; i < len(ea) && i < len(eb); i++ {
		va, vb := ea[i].Value(), eb[i].Value()
		if c := cmp.Compare(TypeBracket(va.Type), TypeBracket(vb.Type)); c != 0 {
			return c
		}
		if c := cmp.Compare(ea[i].Key(), eb[i].Key()); c != 0 {
			return c
		}
		if c := CompareValues(va, vb); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(ea), len(eb))
}

// compareNumbers compares numbers of any BSON numeric type by value. NaN
// sorts below every other number and equals NaN.
func compareNumbers(a, b bsoncore.Value) int {
	if a.Type == bsoncore.TypeDecimal128 || b.Type == bsoncore.TypeDecimal128 {
		return compareBig(a, b)
	}
	ia, aInt := IntOf(a)
	ib, bInt := IntOf(b)
	if aInt && bInt {
		return cmp.Compare(ia, ib)
	}
	fa, _ := NumberOf(a)
	fb, _ := NumberOf(b)
	na, nb := math.IsNaN(fa), math.IsNaN(fb)
	switch {
	case na && nb:
		return 0
	case na:
		return -1
	case nb:
		return 1
	}
	// An int64 beyond 2^53 loses precision as float64; compare exactly then.
	if aInt && math.Abs(float64(ia)) > 1<<53 || bInt && math.Abs(float64(ib)) > 1<<53 {
		return compareBig(a, b)
	}
	switch {
	case fa < fb:
		return -1
	case fa > fb:
		return 1
	}
	return 0
}

// IntOf returns an int32 or int64 value as an int64.
func IntOf(v bsoncore.Value) (int64, bool) {
	switch v.Type {
	case bsoncore.TypeInt32:
		return int64(v.Int32()), true
	case bsoncore.TypeInt64:
		return v.Int64(), true
	}
	return 0, false
}

// compareBig compares two numbers exactly through big.Float; NaN sorts
// lowest and infinities at the ends.
func compareBig(a, b bsoncore.Value) int {
	fa, nanA := BigOf(a)
	fb, nanB := BigOf(b)
	switch {
	case nanA && nanB:
		return 0
	case nanA:
		return -1
	case nanB:
		return 1
	}
	return fa.Cmp(fb)
}

// BigOf returns a numeric value (decimal128 included) as a big.Float.
func BigOf(v bsoncore.Value) (*big.Float, bool) {
	switch v.Type {
	case bsoncore.TypeInt32, bsoncore.TypeInt64:
		i, _ := IntOf(v)
		return new(big.Float).SetInt64(i), false
	case bsoncore.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) {
			return nil, true
		}
		return new(big.Float).SetFloat64(f), false
	case bsoncore.TypeDecimal128:
		h, l, _ := v.Decimal128OK()
		d := bson.NewDecimal128(h, l)
		s := d.String()
		switch s {
		case "NaN", "-NaN":
			return nil, true
		case "Infinity":
			return new(big.Float).SetInf(false), false
		case "-Infinity":
			return new(big.Float).SetInf(true), false
		}
		bi, exp, err := d.BigInt()
		if err != nil {
			return nil, true
		}
		f := new(big.Float).SetPrec(256).SetInt(bi)
		if exp != 0 {
			p := new(big.Float).SetPrec(256).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil))
			if exp > 0 {
				f.Mul(f, p)
			} else {
				f.Quo(f, p)
			}
		}
		return f, false
	}
	return new(big.Float), false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
