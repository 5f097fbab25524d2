package unified

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// matcher compares expected values of a spec file with actual values.
type matcher struct {
	entities *entities
}

// matchRoot matches a root-level value: a document (and each document
// of an array) may hold fields the expected one does not name.
func (m *matcher) matchRoot(expected bson.RawValue, actual bson.RawValue) error {
	return m.match(expected, actual, true, "")
}

// matchOperatorAbsent matches an expected value against an absent one:
// only an operator that accepts absence ($$unsetOrMatches, $$exists:
// false) matches.
func (m *matcher) matchOperatorAbsent(expected bson.RawValue) error {
	if d, ok := expected.DocumentOK(); ok {
		if op, arg, ok := operator(d); ok {
			return m.matchOperator(op, arg, bson.RawValue{}, false, true, "")
		}
	}
	return fmt.Errorf("expected %s", expected)
}

// match reports the first difference between expected and actual. With
// extra, the actual document may carry fields the expected one does not
// name; nested documents never may. Numbers compare by value.
func (m *matcher) match(expected, actual bson.RawValue, extra bool, path string) error {
	if expected.Type == bson.TypeEmbeddedDocument {
		doc := expected.Document()
		if op, arg, ok := operator(doc); ok {
			return m.matchOperator(op, arg, actual, actual.Type != 0, extra, path)
		}
		got, ok := actual.DocumentOK()
		if !ok {
			return fmt.Errorf("%s: expected a document, got %s %s", where(path), actual.Type, actual)
		}
		elems, err := doc.Elements()
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(elems))
		for _, el := range elems {
			k := el.Key()
			seen[k] = true
			ev := el.Value()
			av, err := got.LookupErr(k)
			present := err == nil
			if ed, ok := ev.DocumentOK(); ok {
				if op, arg, ok := operator(ed); ok {
					if err := m.matchOperator(op, arg, av, present, false, join(path, k)); err != nil {
						return err
					}
					continue
				}
			}
			if !present {
				return fmt.Errorf("%s: missing, expected %s", where(join(path, k)), ev)
			}
			if err := m.match(ev, av, false, join(path, k)); err != nil {
				return err
			}
		}
		if !extra {
			aelems, _ := got.Elements()
			for _, el := range aelems {
				if !seen[el.Key()] {
					return fmt.Errorf("%s: unexpected field %q in %s", where(path), el.Key(), got)
				}
			}
		}
		return nil
	}
	if expected.Type == bson.TypeArray {
		got, ok := actual.ArrayOK()
		if !ok {
			return fmt.Errorf("%s: expected an array, got %s %s", where(path), actual.Type, actual)
		}
		ev, _ := expected.Array().Values()
		av, _ := got.Values()
		if len(ev) != len(av) {
			return fmt.Errorf("%s: expected %d elements, got %d: %s", where(path), len(ev), len(av), got)
		}
		for i := range ev {
			if err := m.match(ev[i], av[i], extra, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if ef, ok := number(expected); ok {
		af, ok := number(actual)
		if !ok || ef != af {
			return fmt.Errorf("%s: expected %s, got %s %s", where(path), expected, actual.Type, actual)
		}
		return nil
	}
	if expected.Type != actual.Type || !bytes.Equal(expected.Value, actual.Value) {
		return fmt.Errorf("%s: expected %s %s, got %s %s", where(path), expected.Type, expected, actual.Type, actual)
	}
	return nil
}

// matchOperator applies a $$ operator to the actual value, which may be
// absent (present false).
func (m *matcher) matchOperator(op string, arg, actual bson.RawValue, present, extra bool, path string) error {
	switch op {
	case "$$exists":
		want, ok := arg.BooleanOK()
		if !ok {
			return fmt.Errorf("%s: $$exists needs a boolean", where(path))
		}
		if want != present {
			if want {
				return fmt.Errorf("%s: expected to exist", where(path))
			}
			return fmt.Errorf("%s: expected to be absent, got %s", where(path), actual)
		}
		return nil
	case "$$unsetOrMatches":
		if !present {
			return nil
		}
		return m.match(arg, actual, extra, path)
	case "$$type":
		if !present {
			return fmt.Errorf("%s: missing, expected type %s", where(path), arg)
		}
		var names []string
		if s, ok := arg.StringValueOK(); ok {
			names = []string{s}
		} else if arr, ok := arg.ArrayOK(); ok {
			vals, _ := arr.Values()
			for _, v := range vals {
				names = append(names, v.StringValue())
			}
		}
		if slices.ContainsFunc(names, func(n string) bool { return typeIs(actual.Type, n) }) {
			return nil
		}
		return fmt.Errorf("%s: expected type %v, got %s", where(path), names, actual.Type)
	case "$$matchesEntity":
		id, _ := arg.StringValueOK()
		v, ok := m.entities.value(id)
		if !ok {
			return fmt.Errorf("%s: $$matchesEntity: no entity %q", where(path), id)
		}
		if !present {
			return fmt.Errorf("%s: missing, expected entity %q", where(path), id)
		}
		return m.match(v, actual, extra, path)
	case "$$matchesHexBytes":
		want, err := hex.DecodeString(arg.StringValue())
		if err != nil {
			return fmt.Errorf("%s: $$matchesHexBytes: %v", where(path), err)
		}
		_, got, ok := actual.BinaryOK()
		if !present || !ok || !bytes.Equal(want, got) {
			return fmt.Errorf("%s: expected bytes %s, got %s", where(path), arg.StringValue(), actual)
		}
		return nil
	case "$$sessionLsid":
		id, _ := arg.StringValueOK()
		se, err := entity[*sessionEntity](m.entities, id)
		if err != nil {
			return fmt.Errorf("%s: $$sessionLsid: %v", where(path), err)
		}
		if !present || !sameValue(docValue(se.lsid), actual) {
			return fmt.Errorf("%s: expected the lsid of %s %s, got %s", where(path), id, se.lsid, actual)
		}
		return nil
	case "$$lte":
		want, ok1 := number(arg)
		got, ok2 := number(actual)
		if !present || !ok1 || !ok2 || got > want {
			return fmt.Errorf("%s: expected a number <= %s, got %s", where(path), arg, actual)
		}
		return nil
	case "$$matchAsDocument":
		s, ok := actual.StringValueOK()
		if !present || !ok {
			return fmt.Errorf("%s: $$matchAsDocument: expected a string, got %s", where(path), actual)
		}
		var d bson.Raw
		if err := bson.UnmarshalExtJSON([]byte(s), true, &d); err != nil {
			return fmt.Errorf("%s: $$matchAsDocument: %v", where(path), err)
		}
		return m.match(arg, docValue(d), false, path)
	case "$$matchAsRoot":
		if !present {
			return fmt.Errorf("%s: missing, expected %s", where(path), arg)
		}
		return m.match(arg, actual, true, path)
	}
	return fmt.Errorf("%s: unsupported operator %s", where(path), op)
}

// operator returns the special operator of a one-field document {$$op: arg}.
func operator(d bson.Raw) (string, bson.RawValue, bool) {
	elems, err := d.Elements()
	if err != nil || len(elems) != 1 {
		return "", bson.RawValue{}, false
	}
	k := elems[0].Key()
	if len(k) < 3 || k[:2] != "$$" {
		return "", bson.RawValue{}, false
	}
	return k, elems[0].Value(), true
}

func number(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return float64(v.Int32()), true
	case bson.TypeInt64:
		return float64(v.Int64()), true
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

var typeAliases = map[string]bson.Type{
	"double": bson.TypeDouble, "string": bson.TypeString, "object": bson.TypeEmbeddedDocument,
	"array": bson.TypeArray, "binData": bson.TypeBinary, "undefined": bson.TypeUndefined,
	"objectId": bson.TypeObjectID, "bool": bson.TypeBoolean, "date": bson.TypeDateTime,
	"null": bson.TypeNull, "regex": bson.TypeRegex, "dbPointer": bson.TypeDBPointer,
	"javascript": bson.TypeJavaScript, "symbol": bson.TypeSymbol,
	"javascriptWithScope": bson.TypeCodeWithScope, "int": bson.TypeInt32,
	"timestamp": bson.TypeTimestamp, "long": bson.TypeInt64, "decimal": bson.TypeDecimal128,
	"minKey": bson.TypeMinKey, "maxKey": bson.TypeMaxKey,
}

func typeIs(t bson.Type, alias string) bool {
	if alias == "number" {
		return t == bson.TypeInt32 || t == bson.TypeInt64 || t == bson.TypeDouble || t == bson.TypeDecimal128
	}
	want, ok := typeAliases[alias]
	return ok && want == t
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}
