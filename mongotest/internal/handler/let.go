package handler

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The let option of aggregate, find, findAndModify, update, delete and
// bulkWrite: {let: {name: value}} makes $$name a variable of the
// command's expressions. mongotest supports constant values: it replaces
// $$name (and $$name.path) by the value wherever expressions are read
// (in $expr, aggregation pipelines and pipeline updates) before the
// command runs. A value that is itself an expression is refused by name.

// letCommands are the commands with a let option.
var letCommands = map[string]bool{"aggregate": true, "find": true, "findAndModify": true, "update": true, "delete": true, "bulkWrite": true}

// applyLet rewrites the command's expressions with its let variables and
// drops let; a command without let is returned as it is.
func applyLet(cmd bsoncore.Document) (bsoncore.Document, error) {
	letV := cmd.Lookup("let")
	if letV.Type == 0 {
		return cmd, nil
	}
	let, ok := letV.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'let' must be an object")
	}
	vars := map[string]bsoncore.Value{}
	elems, _ := let.Elements()
	for _, el := range elems {
		v := el.Value()
		if isExpression(v) {
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support let variables whose value is an expression (%s)", el.Key())
		}
		vars[el.Key()] = v
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	celems, _ := cmd.Elements()
	for _, el := range celems {
		if el.Key() == "let" {
			continue
		}
		out = appendLet(out, el.Key(), el.Value(), vars, false)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}

// isExpression reports whether a let value is computed: a "$path" or
// "$$var" string, or an object whose first field is an operator.
func isExpression(v bsoncore.Value) bool {
	if s, ok := v.StringValueOK(); ok {
		return strings.HasPrefix(s, "$")
	}
	if d, ok := v.DocumentOK(); ok {
		elems, _ := d.Elements()
		return len(elems) > 0 && strings.HasPrefix(elems[0].Key(), "$")
	}
	return false
}

// appendLet appends key: v with the variables replaced where v is read
// as an expression (expr true), or in the parts of a command that are.
func appendLet(out []byte, key string, v bsoncore.Value, vars map[string]bsoncore.Value, expr bool) []byte {
	switch v.Type {
	case bsoncore.TypeString:
		if expr {
			if val, ok := lookupVar(v.StringValue(), vars); ok {
				idx, o := bsoncore.AppendDocumentElementStart(out, key)
				o = bsoncore.AppendValueElement(o, "$literal", val)
				out, _ = bsoncore.AppendDocumentEnd(o, idx)
				return out
			}
		}
	case bsoncore.TypeEmbeddedDocument:
		idx, o := bsoncore.AppendDocumentElementStart(out, key)
		elems, _ := v.Document().Elements()
		for _, el := range elems {
			sub := expr
			switch el.Key() {
			case "$literal":
				o = append(o, el...)
				continue
			case "$expr", "pipeline", "u", "update", "updateMods":
				sub = sub || el.Key() == "$expr" || el.Key() == "pipeline" || el.Value().Type == bsoncore.TypeArray
			}
			o = appendLet(o, el.Key(), el.Value(), vars, sub)
		}
		out, _ = bsoncore.AppendDocumentEnd(o, idx)
		return out
	case bsoncore.TypeArray:
		idx, o := bsoncore.AppendArrayElementStart(out, key)
		vals, _ := v.Array().Values()
		for i, x := range vals {
			o = appendLet(o, bsonutil.ArrayKey(i), x, vars, expr)
		}
		out, _ = bsoncore.AppendArrayEnd(o, idx)
		return out
	}
	return bsoncore.AppendValueElement(out, key, v)
}

// lookupVar resolves "$$name" or "$$name.a.b" against the variables.
func lookupVar(s string, vars map[string]bsoncore.Value) (bsoncore.Value, bool) {
	if !strings.HasPrefix(s, "$$") {
		return bsoncore.Value{}, false
	}
	name, rest, _ := strings.Cut(s[2:], ".")
	v, ok := vars[name]
	if !ok {
		return bsoncore.Value{}, false
	}
	for _, p := range strings.Split(rest, ".") {
		if p == "" {
			continue
		}
		d, ok := v.DocumentOK()
		if !ok {
			return bsoncore.Value{}, false
		}
		if v, ok = d.Lookup(p), d.Lookup(p).Type != 0; !ok {
			return bsoncore.Value{}, false
		}
	}
	return v, true
}
