package query

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// $getField, $setField and $unsetField read, set and remove one field of
// a document by its literal name, which may contain dots or start with a
// dollar sign (names field paths cannot express):
//
//	{$getField: {field, input}}         (or {$getField: "<name>"})
//	{$setField: {field, input, value}}  (value $$REMOVE removes the field)
//	{$unsetField: {field, input}}
//
// field must be a constant string; input defaults to $$CURRENT for
// $getField. An input that is null or missing gives null (missing for
// $getField); another non-document input is an error.

type fieldOpExpr struct {
	op    string
	field string
	input aggExpr
	value aggExpr // $setField only
}

func compileFieldOp(op string, arg bsoncore.Value) (aggExpr, error) {
	x := fieldOpExpr{op: op, input: fieldExpr{}}
	if s, ok := arg.StringValueOK(); ok && op == "$getField" {
		if strings.HasPrefix(s, "$") {
			return nil, codes.Errorf(codes.FailedToParse, "%s requires 'field' to evaluate to a constant, but got a non-constant argument", op)
		}
		x.field = s
		return x, nil
	}
	d, ok := arg.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "%s only supports an object as its argument", op)
	}
	elems, _ := d.Elements()
	hasInput := false
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "field":
			if ld, ok := v.DocumentOK(); ok {
				if lv, err := ld.LookupErr("$literal"); err == nil {
					v = lv
				}
			}
			s, ok := v.StringValueOK()
			// A plain "$name" would be a field path: the name must be a
			// constant ($literal lets it start with a dollar sign).
			if !ok || strings.HasPrefix(s, "$") && el.Value().Type == bsoncore.TypeString {
				return nil, codes.Errorf(codes.FailedToParse, "%s requires 'field' to evaluate to a constant, but got a non-constant argument", op)
			}
			x.field = s
		case "input":
			in, err := compileAggExpr(v)
			if err != nil {
				return nil, err
			}
			x.input, hasInput = in, true
		case "value":
			if op != "$setField" {
				return nil, codes.Errorf(codes.FailedToParse, "%s found an unknown argument: value", op)
			}
			val, err := compileAggExpr(v)
			if err != nil {
				return nil, err
			}
			x.value = val
		default:
			return nil, codes.Errorf(codes.FailedToParse, "%s found an unknown argument: %s", op, el.Key())
		}
	}
	if d.Lookup("field").Type == 0 {
		return nil, codes.Errorf(codes.FailedToParse, "%s requires 'field' to be specified", op)
	}
	if op != "$getField" && !hasInput {
		return nil, codes.Errorf(codes.FailedToParse, "%s requires 'input' to be specified", op)
	}
	if op == "$setField" && x.value == nil {
		return nil, codes.Errorf(codes.FailedToParse, "$setField requires 'value' to be specified")
	}
	return x, nil
}

func (x fieldOpExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	in, ok, err := x.input.eval(root)
	if err != nil {
		return bsoncore.Value{}, false, err
	}
	if !ok || in.Type == bsoncore.TypeNull || in.Type == bsoncore.TypeUndefined {
		if x.op == "$getField" {
			return bsoncore.Value{}, false, nil
		}
		return bsoncore.Value{Type: bsoncore.TypeNull}, true, nil
	}
	doc, isDoc := in.DocumentOK()
	if !isDoc {
		return bsoncore.Value{}, false, codes.Errorf(codes.TypeMismatch, "%s requires 'input' to evaluate to type Object, but got %s", x.op, in.Type)
	}
	if x.op == "$getField" {
		v, err := doc.LookupErr(x.field)
		return v, err == nil, nil
	}
	var val bsoncore.Value
	set := false
	if x.op == "$setField" {
		if val, set, err = x.value.eval(root); err != nil {
			return bsoncore.Value{}, false, err
		}
	}
	elems, _ := doc.Elements()
	idx, out := bsoncore.AppendDocumentStart(nil)
	done := false
	for _, el := range elems {
		if el.Key() == x.field {
			if set {
				out = bsoncore.AppendValueElement(out, x.field, val)
			}
			done = true
			continue
		}
		out = append(out, el...)
	}
	if set && !done {
		out = bsoncore.AppendValueElement(out, x.field, val)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: out}, true, nil
}
