package query

import (
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Stage is one aggregation stage after $changeStream, applied to each event.
type Stage interface {
	// Apply returns the transformed event, or nil to drop it.
	Apply(ev bsoncore.Document) (bsoncore.Document, error)
}

// CompileStage parses one stage after $changeStream, such as {$match: {...}}.
// The stage keeps a copy of what it needs, so sd may be reused afterwards.
func CompileStage(sd bsoncore.Document) (Stage, error) {
	name, arg, err := stageNameArg(sd)
	if err != nil {
		return nil, err
	}
	st, err := compileDocStage(name, arg)
	if err != nil || st != nil {
		return st, err
	}
	return nil, codes.Errorf(codes.Location40324, "Unrecognized pipeline stage name: '%s' (mongotest supports $match, $project, $addFields, $set, $unset, $replaceRoot, $replaceWith and $changeStreamSplitLargeEvent after $changeStream)", name)
}

// stageNameArg splits a stage document {name: arg}, which must have
// exactly one field. arg is a copy that outlives sd.
func stageNameArg(sd bsoncore.Document) (string, bsoncore.Value, error) {
	elems, err := sd.Elements()
	if err != nil {
		return "", bsoncore.Value{}, codes.Errorf(codes.FailedToParse, "pipeline stage: %v", err)
	}
	if len(elems) != 1 {
		return "", bsoncore.Value{}, codes.Errorf(codes.Location40323, "A pipeline stage specification object must contain exactly one field.")
	}
	v := elems[0].Value()
	v.Data = append([]byte(nil), v.Data...)
	return elems[0].Key(), v, nil
}

// stageSpec is one stage of a pipeline as sent: {name: arg}.
type stageSpec struct {
	name string
	arg  bsoncore.Value
}

// splitPipeline reads a pipeline array into its stages.
func splitPipeline(arr bsoncore.Array) ([]stageSpec, error) {
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "pipeline: %v", err)
	}
	out := make([]stageSpec, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "Each element of the 'pipeline' array must be an object")
		}
		if out[i].name, out[i].arg, err = stageNameArg(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// compileDocStage compiles the stages that transform or filter one
// document at a time, which change streams, pipeline-style updates and
// collection aggregations share: $match, $project, $addFields/$set,
// $unset, $replaceRoot and $replaceWith. It returns nil, nil for any other
// name, for the caller to report.
func compileDocStage(name string, arg bsoncore.Value) (Stage, error) {
	switch name {
	case "$match":
		fd, ok := arg.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location15959, "the match filter must be an expression in an object")
		}
		m, err := CompileFilter(fd)
		if err != nil {
			return nil, err
		}
		return matchStage{m}, nil
	case "$project":
		spec, ok := arg.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location15969, "$project specification must be an object")
		}
		p, err := compileProject(spec, "Invalid $project :: caused by :: ")
		if err != nil {
			return nil, err
		}
		return p, nil
	case "$addFields", "$set":
		spec, ok := arg.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location40272, "%s specification stage must be an object, got %s", name, bsonutil.TypeName(arg.Type))
		}
		return compileAddFields(name, spec)
	case "$unset":
		return compileUnset(arg)
	case "$replaceRoot":
		spec, ok := arg.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.Location40229, "expected an object as specification for $replaceRoot stage, got %s", bsonutil.TypeName(arg.Type))
		}
		elems, err := spec.Elements()
		if err != nil {
			return nil, codes.Errorf(codes.FailedToParse, "$replaceRoot: %v", err)
		}
		var root aggExpr
		for _, el := range elems {
			if el.Key() != "newRoot" {
				return nil, codes.Errorf(codes.Location40415, "BSON field '$replaceRoot.%s' is an unknown field.", el.Key())
			}
			if root, err = compileAggExpr(el.Value()); err != nil {
				return nil, err
			}
		}
		if root == nil {
			return nil, codes.Errorf(codes.Location40231, "no newRoot specified for the $replaceRoot stage")
		}
		return replaceRootStage{root}, nil
	case "$replaceWith":
		root, err := compileAggExpr(arg)
		if err != nil {
			return nil, err
		}
		return replaceRootStage{root}, nil
	}
	return nil, nil
}

type matchStage struct{ m Matcher }

func (s matchStage) Apply(ev bsoncore.Document) (bsoncore.Document, error) {
	if s.m.Matches(ev) {
		return ev, nil
	}
	return nil, nil
}

// projNode is one level of a projection or $addFields specification: the
// fields it names, in specification order.
type projNode struct {
	fields []*projField
}

// projField is one named field: a nested level, a leaf inclusion or
// exclusion, or a computed expression.
type projField struct {
	name    string
	child   *projNode
	include bool    // leaf: include (inclusion mode) or not (exclusion)
	expr    aggExpr // computed value
}

func (n *projNode) field(name string) *projField {
	for _, f := range n.fields {
		if f.name == name {
			return f
		}
	}
	return nil
}

// hasExpr tells whether the node or a descendant computes a value.
func (n *projNode) hasExpr() bool {
	for _, f := range n.fields {
		if f.expr != nil || (f.child != nil && f.child.hasExpr()) {
			return true
		}
	}
	return false
}

// leafSetter records one parsed leaf in the tree.
type leafSetter func(f *projField) error

// addPath walks (creating) the nodes of a dotted path and lets set fill the
// leaf. A path that both ends at and passes through a field collides.
// prefix starts error messages.
func (n *projNode) addPath(prefix, path string, set leafSetter) error {
	parts := strings.Split(path, ".")
	cur := n
	for i, p := range parts {
		if p == "" {
			return codes.Errorf(codes.Location40352, "%sFieldPath field names may not be empty strings.", prefix)
		}
		if strings.HasPrefix(p, "$") {
			return codes.Errorf(codes.Location16410, "%sFieldPath field names may not start with '$'. Consider using $getField or $setField.", prefix)
		}
		f := cur.field(p)
		last := i == len(parts)-1
		if f == nil {
			f = &projField{name: p}
			cur.fields = append(cur.fields, f)
		} else if last || f.child == nil {
			return codes.Errorf(codes.Location31250, "%sPath collision at %s", prefix, path)
		}
		if last {
			return set(f)
		}
		if f.child == nil {
			f.child = &projNode{}
		}
		cur = f.child
	}
	return nil
}

// projectStage is $project: an inclusion or an exclusion projection.
type Projection struct {
	root      *projNode
	inclusion bool
	// idExcluded is set by _id: 0 (or false).
	idExcluded bool
}

// compileProject compiles a $project specification (or a find
// projection); prefix starts its error messages, as the real server's
// differ between the two.
func compileProject(spec bsoncore.Document, prefix string) (*Projection, error) {
	p := &Projection{root: &projNode{}}
	// mode: 0 undecided, 1 inclusion, 2 exclusion.
	mode := 0
	var walk func(prefix string, d bsoncore.Document, top bool) error
	walk = func(prefix string, d bsoncore.Document, top bool) error {
		elems, err := d.Elements()
		if err != nil {
			return codes.Errorf(codes.FailedToParse, "$project: %v", err)
		}
		if len(elems) == 0 {
			return codes.Errorf(codes.Location51272, "%sAn empty sub-projection is not a valid value. Found empty object at path", prefix)
		}
		for _, el := range elems {
			path := prefix + el.Key()
			v := el.Value()
			if sub, ok := v.DocumentOK(); ok {
				if n, _ := bsonutil.FirstKey(sub); !strings.HasPrefix(n, "$") {
					if err := walk(path+".", sub, false); err != nil {
						return err
					}
					continue
				}
			}
			if flag, isFlag := projectionFlag(v); isFlag {
				if top && path == "_id" {
					if !flag {
						p.idExcluded = true
						continue
					}
					// _id: 1 is compatible with both modes.
					if err := p.root.addPath(prefix, path, func(f *projField) error { f.include = true; return nil }); err != nil {
						return err
					}
					continue
				}
				want := 2
				if flag {
					want = 1
				}
				if mode != 0 && mode != want {
					if flag {
						return codes.Errorf(codes.Location31253, "%sCannot do inclusion on field %s in exclusion projection", prefix, path)
					}
					return codes.Errorf(codes.Location31254, "%sCannot do exclusion on field %s in inclusion projection", prefix, path)
				}
				mode = want
				if err := p.root.addPath(prefix, path, func(f *projField) error { f.include = flag; return nil }); err != nil {
					return err
				}
				continue
			}
			if mode == 2 {
				return codes.Errorf(codes.Location31252, "%sCannot use expression other than $meta in exclusion projection", prefix)
			}
			mode = 1
			x, err := compileAggExpr(v)
			if err != nil {
				return err
			}
			if err := p.root.addPath(prefix, path, func(f *projField) error { f.expr = x; return nil }); err != nil {
				return err
			}
		}
		return nil
	}
	if len(spec) <= 5 {
		return nil, codes.Errorf(codes.Location51272, "%sprojection specification must have at least one field", prefix)
	}
	if err := walk("", spec, true); err != nil {
		return nil, err
	}
	if mode == 2 {
		return p, nil
	}
	if mode == 0 && p.idExcluded && p.root.field("_id") == nil {
		// {_id: 0} alone is an exclusion projection.
		return p, nil
	}
	p.inclusion = true
	return p, nil
}

// projectionFlag reports whether v is an inclusion flag (true or a
// non-zero number) or an exclusion flag (false or zero).
func projectionFlag(v bsoncore.Value) (include, ok bool) {
	if b, ok := v.BooleanOK(); ok {
		return b, true
	}
	if f, ok := bsonutil.NumberOf(v); ok {
		return f != 0, true
	}
	return false, false
}

// Apply returns the projection of ev.
func (p *Projection) Apply(ev bsoncore.Document) (bsoncore.Document, error) {
	if p.inclusion {
		return projectInclude(p.root, ev, ev, true, p.idExcluded)
	}
	return projectExclude(p.root, ev, true, p.idExcluded)
}

// includeDoc applies an inclusion node to d: the named fields in d's order,
// then the computed fields in specification order. At the top level _id is
// kept unless excluded.
func projectInclude(n *projNode, d, root bsoncore.Document, top, idExcluded bool) (bsoncore.Document, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(d)))
	done := make(map[string]bool)
	for _, el := range elems {
		key := el.Key()
		f := n.field(key)
		if top && key == "_id" && f == nil {
			if !idExcluded {
				out = append(out, el...)
			}
			continue
		}
		if f == nil || f.expr != nil {
			continue
		}
		if f.child == nil {
			if f.include {
				out = append(out, el...)
			}
			continue
		}
		v := el.Value()
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument:
			sub, err := projectInclude(f.child, v.Document(), root, false, false)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendDocumentElement(out, key, sub)
			done[key] = true
		case bsoncore.TypeArray:
			arr, err := projectIncludeArray(f.child, v.Array(), root)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendArrayElement(out, key, arr)
			done[key] = true
		}
	}
	for _, f := range n.fields {
		switch {
		case f.expr != nil:
			v, ok, err := f.expr.eval(root)
			if err != nil {
				return nil, err
			}
			if ok {
				out = bsoncore.AppendValueElement(out, f.name, v)
			}
		case f.child != nil && !done[f.name] && f.child.hasExpr():
			// Computed fields below a missing or scalar field create it.
			sub, err := projectInclude(f.child, EmptyDoc, root, false, false)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendDocumentElement(out, f.name, sub)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}

// includeArray applies an inclusion node to each document of an array;
// other values are dropped, nested arrays are projected in turn.
func projectIncludeArray(n *projNode, a bsoncore.Array, root bsoncore.Document) (bsoncore.Array, error) {
	vals, err := a.Values()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendArrayStart(nil)
	i := 0
	for _, v := range vals {
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument:
			sub, err := projectInclude(n, v.Document(), root, false, false)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), sub)
			i++
		case bsoncore.TypeArray:
			sub, err := projectIncludeArray(n, v.Array(), root)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendArrayElement(out, bsonutil.ArrayKey(i), sub)
			i++
		default:
			if n.hasExpr() {
				sub, err := projectInclude(n, EmptyDoc, root, false, false)
				if err != nil {
					return nil, err
				}
				out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), sub)
				i++
			}
		}
	}
	out, _ = bsoncore.AppendArrayEnd(out, idx)
	return out, nil
}

// excludeDoc applies an exclusion node to d: everything but the named
// leaves.
func projectExclude(n *projNode, d bsoncore.Document, top, idExcluded bool) (bsoncore.Document, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(d)))
	for _, el := range elems {
		key := el.Key()
		if top && key == "_id" && idExcluded {
			continue
		}
		f := n.field(key)
		if f == nil {
			out = append(out, el...)
			continue
		}
		if f.child == nil {
			continue // an excluded leaf
		}
		v := el.Value()
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument:
			sub, err := projectExclude(f.child, v.Document(), false, false)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendDocumentElement(out, key, sub)
		case bsoncore.TypeArray:
			arr, err := projectExcludeArray(f.child, v.Array())
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendArrayElement(out, key, arr)
		default:
			out = append(out, el...)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}

func projectExcludeArray(n *projNode, a bsoncore.Array) (bsoncore.Array, error) {
	vals, err := a.Values()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendArrayStart(nil)
	for i, v := range vals {
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument:
			sub, err := projectExclude(n, v.Document(), false, false)
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), sub)
		case bsoncore.TypeArray:
			sub, err := projectExcludeArray(n, v.Array())
			if err != nil {
				return nil, err
			}
			out = bsoncore.AppendArrayElement(out, bsonutil.ArrayKey(i), sub)
		default:
			out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(i), v)
		}
	}
	out, _ = bsoncore.AppendArrayEnd(out, idx)
	return out, nil
}

// EmptyDoc is the document {}.
var EmptyDoc = bsoncore.Document{5, 0, 0, 0, 0}

// addFieldsStage is $addFields (alias $set): computed fields replace
// existing ones in place or are appended; a nested object adds fields to
// the embedded document rather than replacing it.
type addFieldsStage struct{ root *projNode }

func compileAddFields(name string, spec bsoncore.Document) (Stage, error) {
	root := &projNode{}
	var walk func(prefix string, d bsoncore.Document) error
	walk = func(prefix string, d bsoncore.Document) error {
		elems, err := d.Elements()
		if err != nil {
			return codes.Errorf(codes.FailedToParse, "%s: %v", name, err)
		}
		for _, el := range elems {
			path := prefix + el.Key()
			v := el.Value()
			if sub, ok := v.DocumentOK(); ok && len(sub) > 5 {
				if n, _ := bsonutil.FirstKey(sub); !strings.HasPrefix(n, "$") {
					if err := walk(path+".", sub); err != nil {
						return err
					}
					continue
				}
			}
			x, err := compileAggExpr(v)
			if err != nil {
				return err
			}
			if err := root.addPath("Invalid "+name+" :: caused by :: ", path, func(f *projField) error { f.expr = x; return nil }); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", spec); err != nil {
		return nil, err
	}
	return addFieldsStage{root}, nil
}

func (s addFieldsStage) Apply(ev bsoncore.Document) (bsoncore.Document, error) {
	return addFieldsDoc(s.root, ev, ev)
}

func addFieldsDoc(n *projNode, d, root bsoncore.Document) (bsoncore.Document, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, err
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(d)+64))
	done := make(map[string]bool)
	for _, el := range elems {
		key := el.Key()
		f := n.field(key)
		if f == nil {
			out = append(out, el...)
			continue
		}
		done[key] = true
		var err error
		if out, err = appendAddedField(out, f, el.Value(), true, root); err != nil {
			return nil, err
		}
	}
	for _, f := range n.fields {
		if done[f.name] {
			continue
		}
		var err error
		if out, err = appendAddedField(out, f, bsoncore.Value{}, false, root); err != nil {
			return nil, err
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}

// appendAddedField appends field f computed over the current value cur
// (present tells whether the field existed).
func appendAddedField(out []byte, f *projField, cur bsoncore.Value, present bool, root bsoncore.Document) ([]byte, error) {
	if f.expr != nil {
		v, ok, err := f.expr.eval(root)
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil // a missing value ($$REMOVE, a missing path) removes the field
		}
		return bsoncore.AppendValueElement(out, f.name, v), nil
	}
	switch {
	case present && cur.Type == bsoncore.TypeEmbeddedDocument:
		sub, err := addFieldsDoc(f.child, cur.Document(), root)
		if err != nil {
			return nil, err
		}
		return bsoncore.AppendDocumentElement(out, f.name, sub), nil
	case present && cur.Type == bsoncore.TypeArray:
		vals, err := cur.Array().Values()
		if err != nil {
			return nil, err
		}
		aidx, o := bsoncore.AppendArrayElementStart(out, f.name)
		for i, v := range vals {
			if d, ok := v.DocumentOK(); ok {
				sub, err := addFieldsDoc(f.child, d, root)
				if err != nil {
					return nil, err
				}
				o = bsoncore.AppendDocumentElement(o, bsonutil.ArrayKey(i), sub)
			} else {
				sub, err := addFieldsDoc(f.child, EmptyDoc, root)
				if err != nil {
					return nil, err
				}
				o = bsoncore.AppendDocumentElement(o, bsonutil.ArrayKey(i), sub)
			}
		}
		o, _ = bsoncore.AppendArrayEnd(o, aidx)
		return o, nil
	default:
		sub, err := addFieldsDoc(f.child, EmptyDoc, root)
		if err != nil {
			return nil, err
		}
		return bsoncore.AppendDocumentElement(out, f.name, sub), nil
	}
}

// compileUnset parses $unset: a path or an array of paths, an exclusion
// projection in disguise.
func compileUnset(arg bsoncore.Value) (Stage, error) {
	var paths []string
	switch arg.Type {
	case bsoncore.TypeString:
		paths = []string{arg.StringValue()}
	case bsoncore.TypeArray:
		vals, err := arg.Array().Values()
		if err != nil {
			return nil, codes.Errorf(codes.FailedToParse, "$unset: %v", err)
		}
		if len(vals) == 0 {
			return nil, codes.Errorf(codes.Location31119, "$unset specification must be a string or an array with at least one field")
		}
		for _, v := range vals {
			s, ok := v.StringValueOK()
			if !ok {
				return nil, codes.Errorf(codes.Location31120, "$unset specification must be a string or an array containing only string values")
			}
			paths = append(paths, s)
		}
	default:
		return nil, codes.Errorf(codes.Location31002, "$unset specification must be a string or an array")
	}
	p := &Projection{root: &projNode{}}
	for _, path := range paths {
		if path == "_id" {
			p.idExcluded = true
			continue
		}
		if err := p.root.addPath("Invalid $unset :: caused by :: ", path, func(f *projField) error { f.include = false; return nil }); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// replaceRootStage is $replaceRoot {newRoot: expr} and $replaceWith expr.
type replaceRootStage struct{ root aggExpr }

func (s replaceRootStage) Apply(ev bsoncore.Document) (bsoncore.Document, error) {
	v, ok, err := s.root.eval(ev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, codes.Errorf(codes.Location40228, "'newRoot' expression must evaluate to an object, but resulting value was: MISSING. Type of resulting value: 'missing'. Input document: %s", ev)
	}
	d, isDoc := v.DocumentOK()
	if !isDoc {
		return nil, codes.Errorf(codes.Location40228, "'newRoot' expression must evaluate to an object, but resulting value was: %s. Type of resulting value: '%s'. Input document: %s", v, bsonutil.TypeName(v.Type), ev)
	}
	return d, nil
}

// aggExpr is a compiled aggregation expression: a literal, a "$path", a
// "$$ROOT"-style variable, an object or array of expressions, or $literal.
type aggExpr interface {
	// eval computes the value over the document root; ok is false when
	// the value is missing.
	eval(root bsoncore.Document) (v bsoncore.Value, ok bool, err error)
}

// compileAggExpr parses an expression. Operators other than $literal are
// rejected with InvalidPipelineOperator naming them.
func compileAggExpr(v bsoncore.Value) (aggExpr, error) {
	switch v.Type {
	case bsoncore.TypeString:
		s := v.StringValue()
		if !strings.HasPrefix(s, "$") {
			return constExpr{v}, nil
		}
		return compileFieldRef(s)
	case bsoncore.TypeEmbeddedDocument:
		d := v.Document()
		elems, err := d.Elements()
		if err != nil {
			return nil, codes.Errorf(codes.FailedToParse, "expression: %v", err)
		}
		if len(elems) > 0 && strings.HasPrefix(elems[0].Key(), "$") {
			op := elems[0].Key()
			if len(elems) > 1 {
				return nil, codes.Errorf(codes.Location15983, "an expression specification must contain exactly one field, the name of the expression. Found %d fields in %s", len(elems), d)
			}
			switch op {
			case "$literal":
				return constExpr{elems[0].Value()}, nil
			case "$getField", "$setField", "$unsetField":
				return compileFieldOp(op, elems[0].Value())
			case "$toHashedIndexKey":
				x, err := compileAggExpr(elems[0].Value())
				if err != nil {
					return nil, err
				}
				return hashedKeyExpr{x}, nil
			}
			if x, ok, err := compileOperatorExpr(op, elems[0].Value()); ok {
				return x, err
			}
			return nil, codes.Errorf(codes.InvalidPipelineOperator, "Unrecognized expression '%s' (mongotest supports field paths, $$ROOT, $$CURRENT, $$REMOVE, $literal, $getField, $setField, $unsetField, $eq, $ne, $gt, $gte, $lt, $lte, $cmp, $and, $or, $not and $toHashedIndexKey)", op)
		}
		obj := objExpr{}
		for _, el := range elems {
			k := el.Key()
			if strings.HasPrefix(k, "$") {
				return nil, codes.Errorf(codes.Location16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.")
			}
			if strings.Contains(k, ".") {
				return nil, codes.Errorf(codes.Location16412, "FieldPath field names may not contain '.'. Consider using $getField or $setField.")
			}
			x, err := compileAggExpr(el.Value())
			if err != nil {
				return nil, err
			}
			obj.fields = append(obj.fields, objExprField{k, x})
		}
		return obj, nil
	case bsoncore.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, codes.Errorf(codes.FailedToParse, "expression: %v", err)
		}
		var arr arrExpr
		for _, ev := range vals {
			x, err := compileAggExpr(ev)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	}
	return constExpr{v}, nil
}

func compileFieldRef(s string) (aggExpr, error) {
	if strings.HasPrefix(s, "$$") {
		name, rest, _ := strings.Cut(s[2:], ".")
		var path []string
		if rest != "" {
			path = strings.Split(rest, ".")
		}
		switch name {
		case "ROOT", "CURRENT":
			return fieldExpr{path}, nil
		case "REMOVE":
			return missingExpr{}, nil
		}
		return nil, codes.Errorf(codes.Location17276, "Use of undefined variable: %s", name)
	}
	if s == "$" {
		return nil, codes.Errorf(codes.Location16872, "'$' by itself is not a valid FieldPath")
	}
	path := strings.Split(s[1:], ".")
	for _, p := range path {
		if p == "" {
			return nil, codes.Errorf(codes.Location40352, "FieldPath field names may not be empty strings.")
		}
		if strings.HasPrefix(p, "$") {
			return nil, codes.Errorf(codes.Location16410, "FieldPath field names may not start with '$'. Consider using $getField or $setField.")
		}
	}
	return fieldExpr{path}, nil
}

type constExpr struct{ v bsoncore.Value }

func (x constExpr) eval(bsoncore.Document) (bsoncore.Value, bool, error) { return x.v, true, nil }

type missingExpr struct{}

func (missingExpr) eval(bsoncore.Document) (bsoncore.Value, bool, error) {
	return bsoncore.Value{}, false, nil
}

// fieldExpr is "$a.b" (path relative to the root; nil path is the root).
type fieldExpr struct{ path []string }

func (x fieldExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	v := bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: root}
	got, ok := resolvePath(v, x.path)
	return got, ok, nil
}

// resolvePath follows path from v as a field path expression does:
// through documents, and through arrays by collecting the value of the
// rest of the path in each element.
func resolvePath(v bsoncore.Value, path []string) (bsoncore.Value, bool) {
	if len(path) == 0 {
		return v, true
	}
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument:
		next, err := v.Document().LookupErr(path[0])
		if err != nil {
			return bsoncore.Value{}, false
		}
		return resolvePath(next, path[1:])
	case bsoncore.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return bsoncore.Value{}, false
		}
		idx, out := bsoncore.AppendArrayStart(nil)
		i := 0
		for _, el := range vals {
			if el.Type != bsoncore.TypeEmbeddedDocument && el.Type != bsoncore.TypeArray {
				continue
			}
			if got, ok := resolvePath(el, path); ok {
				out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(i), got)
				i++
			}
		}
		out, _ = bsoncore.AppendArrayEnd(out, idx)
		return bsoncore.Value{Type: bsoncore.TypeArray, Data: out}, true
	}
	return bsoncore.Value{}, false
}

type objExprField struct {
	name string
	x    aggExpr
}

// objExpr builds a document; fields whose value is missing are left out.
type objExpr struct{ fields []objExprField }

func (x objExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, f := range x.fields {
		v, ok, err := f.x.eval(root)
		if err != nil {
			return bsoncore.Value{}, false, err
		}
		if ok {
			out = bsoncore.AppendValueElement(out, f.name, v)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: out}, true, nil
}

// arrExpr builds an array; missing values become null.
type arrExpr []aggExpr

func (x arrExpr) eval(root bsoncore.Document) (bsoncore.Value, bool, error) {
	idx, out := bsoncore.AppendArrayStart(nil)
	for i, e := range x {
		v, ok, err := e.eval(root)
		if err != nil {
			return bsoncore.Value{}, false, err
		}
		if ok {
			out = bsoncore.AppendValueElement(out, bsonutil.ArrayKey(i), v)
		} else {
			out = bsoncore.AppendNullElement(out, bsonutil.ArrayKey(i))
		}
	}
	out, _ = bsoncore.AppendArrayEnd(out, idx)
	return bsoncore.Value{Type: bsoncore.TypeArray, Data: out}, true, nil
}
