package mongotest

import (
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// pipeStage is one stage of a pipeline-style update: $set/$addFields,
// $unset, $project, $replaceRoot or $replaceWith.
type pipeStage struct {
	name string
	spec bsoncore.Value
	proj *projection // $project and $unset
}

func compilePipeline(arr bsoncore.Array) ([]pipeStage, error) {
	vals, err := arr.Values()
	if err != nil {
		return nil, errorf(codeFailedToParse, "pipeline: %v", err)
	}
	var out []pipeStage
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, errorf(codeTypeMismatch, "Each element of the 'pipeline' array must be an object")
		}
		keys, _ := d.Elements()
		if len(keys) != 1 {
			return nil, errorf(codeLocation40323, "A pipeline stage specification object must contain exactly one field.")
		}
		name, spec := keys[0].Key(), keys[0].Value()
		st := pipeStage{name: name, spec: spec}
		switch name {
		case "$set", "$addFields":
			sd, ok := spec.DocumentOK()
			if !ok {
				return nil, errorf(codeLocation40272, "%s specification stage must be an object, got %s", name, typeName(spec.Type))
			}
			if err := checkExprDoc(sd); err != nil {
				return nil, err
			}
		case "$replaceRoot", "$replaceWith":
			if name == "$replaceRoot" {
				sd, ok := spec.DocumentOK()
				if !ok || sd.Lookup("newRoot").Type == 0 {
					return nil, errorf(codeLocation40228, "no newRoot specified for the $replaceRoot stage")
				}
				st.spec = sd.Lookup("newRoot")
			}
			if err := checkExpr(st.spec); err != nil {
				return nil, err
			}
		case "$unset":
			var fields []bsoncore.Value
			if s, ok := spec.StringValueOK(); ok {
				fields = []bsoncore.Value{bsoncore.Value{Type: bsoncore.TypeString, Data: bsoncore.AppendString(nil, s)}}
			} else if a, ok := spec.ArrayOK(); ok {
				fields, _ = a.Values()
			} else {
				return nil, errorf(codeLocation31002, "$unset specification must be a string or an array")
			}
			p := &projection{exclude: true}
			for _, f := range fields {
				s, ok := f.StringValueOK()
				if !ok {
					return nil, errorf(codeLocation31120, "$unset specification must be a string or an array containing only string values")
				}
				p.paths = append(p.paths, strings.Split(s, "."))
			}
			st.proj = p
		case "$project":
			sd, ok := spec.DocumentOK()
			if !ok {
				return nil, errorf(codeLocation15969, "$project specification must be an object")
			}
			p, err := compileProjection(sd)
			if err != nil {
				return nil, err
			}
			st.proj = p
		default:
			return nil, errorf(codeInvalidOptions, "%s is not allowed to be used within an update (mongotest supports $set, $addFields, $unset, $project, $replaceRoot and $replaceWith)", name)
		}
		out = append(out, st)
	}
	return out, nil
}

const (
	codeLocation40323 = 40323
	codeLocation40272 = 40272
	codeLocation15969 = 15969
)

// checkExpr rejects expression operators mongotest cannot evaluate, at
// compile time, naming them.
func checkExpr(v bsoncore.Value) error {
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument:
		d, _ := v.DocumentOK()
		first, _ := commandName(d)
		if strings.HasPrefix(first, "$") {
			if first == "$literal" {
				return nil
			}
			return errorf(codeInvalidPipelineOperator, "Unrecognized expression '%s' (mongotest evaluates literals, $literal and \"$field\" paths only)", first)
		}
		return checkExprDoc(d)
	case bsoncore.TypeArray:
		a, _ := v.ArrayOK()
		vals, _ := a.Values()
		for _, e := range vals {
			if err := checkExpr(e); err != nil {
				return err
			}
		}
	case bsoncore.TypeString:
		s := v.StringValue()
		if strings.HasPrefix(s, "$$") {
			name, _, _ := strings.Cut(s[2:], ".")
			if name != "ROOT" && name != "CURRENT" && name != "REMOVE" {
				return errorf(codeLocation17276, "Use of undefined variable: %s", name)
			}
		}
	}
	return nil
}

func checkExprDoc(d bsoncore.Document) error {
	elems, _ := d.Elements()
	for _, el := range elems {
		if err := checkExpr(el.Value()); err != nil {
			return err
		}
	}
	return nil
}

// evalExpr evaluates an aggregation expression against root: literals,
// {$literal: v}, "$path" and "$$ROOT.path" references, and documents and
// arrays of those. ok is false when the value is missing ($$REMOVE or a
// path that does not exist).
func evalExpr(v bsoncore.Value, root *mdoc) (any, bool) {
	switch v.Type {
	case bsoncore.TypeString:
		s := v.StringValue()
		if !strings.HasPrefix(s, "$") {
			return v, true
		}
		var path string
		if strings.HasPrefix(s, "$$") {
			name, rest, _ := strings.Cut(s[2:], ".")
			if name == "REMOVE" {
				return nil, false
			}
			if rest == "" {
				return cloneM(root), true
			}
			path = rest
		} else {
			path = s[1:]
		}
		return fieldPathValue(root, strings.Split(path, "."))
	case bsoncore.TypeEmbeddedDocument:
		d, _ := v.DocumentOK()
		if lit, err := d.LookupErr("$literal"); err == nil {
			return toM(lit), true
		}
		out := &mdoc{}
		elems, _ := d.Elements()
		for _, el := range elems {
			if x, ok := evalExpr(el.Value(), root); ok {
				out.set(el.Key(), x)
			}
		}
		return out, true
	case bsoncore.TypeArray:
		a, _ := v.ArrayOK()
		vals, _ := a.Values()
		out := &marr{}
		for _, e := range vals {
			x, ok := evalExpr(e, root)
			if !ok {
				x = bsoncore.Value{Type: bsoncore.TypeNull}
			}
			out.elems = append(out.elems, x)
		}
		return out, true
	}
	return v, true
}

// fieldPathValue reads "$a.b" in aggregation style: through arrays it
// collects the values of each element.
func fieldPathValue(v any, path []string) (any, bool) {
	if len(path) == 0 {
		return cloneM(v), true
	}
	switch x := v.(type) {
	case *mdoc:
		child, ok := x.get(path[0])
		if !ok {
			return nil, false
		}
		return fieldPathValue(child, path[1:])
	case *marr:
		out := &marr{}
		for _, e := range x.elems {
			if _, isDoc := e.(*mdoc); !isDoc {
				if _, isArr := e.(*marr); !isArr {
					continue
				}
			}
			if r, ok := fieldPathValue(e, path); ok {
				out.elems = append(out.elems, r)
			}
		}
		return out, true
	}
	return nil, false
}

// runUpdatePipeline applies the stages to a copy of doc.
func runUpdatePipeline(stages []pipeStage, doc *mdoc) (*mdoc, error) {
	cur := doc
	for _, st := range stages {
		switch st.name {
		case "$set", "$addFields":
			sd, _ := st.spec.DocumentOK()
			next := cloneM(cur).(*mdoc)
			elems, _ := sd.Elements()
			for _, el := range elems {
				setFieldExpr(next, strings.Split(el.Key(), "."), el.Value(), cur)
			}
			cur = next
		case "$replaceRoot", "$replaceWith":
			v, ok := evalExpr(st.spec, cur)
			d, isDoc := v.(*mdoc)
			if !ok || !isDoc {
				return nil, errorf(codeLocation40228, "'newRoot' expression must evaluate to an object, but resulting value was: %s. Type of resulting value: '%s'.", valueOfM(v), typeNameM(v))
			}
			cur = d
		case "$unset", "$project":
			cur = st.proj.apply(cur)
		}
	}
	return cur, nil
}

// setFieldExpr sets one $set/$addFields field: a nested document of
// expressions merges into an existing document, anything else replaces.
func setFieldExpr(dst *mdoc, path []string, expr bsoncore.Value, root *mdoc) {
	for len(path) > 1 {
		child, ok := dst.get(path[0])
		cd, isDoc := child.(*mdoc)
		if !ok || !isDoc {
			cd = &mdoc{}
			dst.set(path[0], cd)
		}
		dst, path = cd, path[1:]
	}
	if d, ok := expr.DocumentOK(); ok {
		if first, _ := commandName(d); !strings.HasPrefix(first, "$") && len(d) > 5 {
			existing, _ := dst.get(path[0])
			ed, isDoc := existing.(*mdoc)
			if !isDoc {
				ed = &mdoc{}
			}
			elems, _ := d.Elements()
			for _, el := range elems {
				setFieldExpr(ed, strings.Split(el.Key(), "."), el.Value(), root)
			}
			dst.set(path[0], ed)
			return
		}
	}
	v, ok := evalExpr(expr, root)
	if !ok {
		dst.del(path[0])
		return
	}
	dst.set(path[0], v)
}
