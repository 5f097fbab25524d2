package query

import (
	"bytes"
	"math"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// updateSpec is a compiled update: a replacement document, update
// operators, or an aggregation pipeline.
type Update struct {
	Replacement  bsoncore.Document
	mods         []modOp
	pipeline     []Stage
	arrayFilters map[string]bsoncore.Document
}

// modOp is one operator applied to one path, such as {$inc: {"a.b": 1}}.
type modOp struct {
	op   string
	path []string
	arg  bsoncore.Value
	to   []string // $rename target
}

// knownModifiers are the update operators mongotest applies.
var knownModifiers = map[string]bool{
	"$set": true, "$unset": true, "$inc": true, "$mul": true, "$min": true, "$max": true,
	"$rename": true, "$push": true, "$addToSet": true, "$pop": true, "$pull": true,
	"$pullAll": true, "$currentDate": true, "$setOnInsert": true,
}

// CompileUpdate parses the u of an update statement (or findAndModify's
// update) and its arrayFilters.
func CompileUpdate(u bsoncore.Value, arrayFilters bsoncore.Value) (*Update, error) {
	s := &Update{}
	if arrayFilters.Type != 0 {
		arr, ok := arrayFilters.ArrayOK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "arrayFilters must be an array")
		}
		vals, _ := arr.Values()
		s.arrayFilters = map[string]bsoncore.Document{}
		for _, v := range vals {
			d, ok := v.DocumentOK()
			if !ok {
				return nil, codes.Errorf(codes.TypeMismatch, "arrayFilters entries must be objects")
			}
			k, _ := bsonutil.FirstKey(d)
			id, _, _ := strings.Cut(k, ".")
			if id == "" {
				return nil, codes.Errorf(codes.FailedToParse, "Cannot use an expression without a top-level field name in arrayFilters")
			}
			if _, dup := s.arrayFilters[id]; dup {
				return nil, codes.Errorf(codes.FailedToParse, "Found multiple array filters with the same top-level field name %s", id)
			}
			if _, err := CompileFilter(d); err != nil {
				return nil, err
			}
			s.arrayFilters[id] = d
		}
	}
	switch u.Type {
	case bsoncore.TypeArray:
		arr, _ := u.ArrayOK()
		p, err := compileUpdatePipeline(arr)
		if err != nil {
			return nil, err
		}
		s.pipeline = p
		return s, nil
	case bsoncore.TypeEmbeddedDocument:
	default:
		return nil, codes.Errorf(codes.FailedToParse, "Update argument must be either an object or an array")
	}
	d, _ := u.DocumentOK()
	first, _ := bsonutil.FirstKey(d)
	if !strings.HasPrefix(first, "$") {
		elems, _ := d.Elements()
		for _, el := range elems {
			if strings.HasPrefix(el.Key(), "$") {
				return nil, codes.Errorf(codes.DollarPrefixedFieldName, "The dollar ($) prefixed field '%s' in '%s' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.", el.Key(), el.Key())
			}
		}
		s.Replacement = d
		return s, nil
	}
	if s.arrayFilters == nil {
		s.arrayFilters = map[string]bsoncore.Document{}
	}
	elems, _ := d.Elements()
	for _, el := range elems {
		op := el.Key()
		if !knownModifiers[op] {
			if op == "$bit" {
				return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the update operator $bit")
			}
			if !strings.HasPrefix(op, "$") {
				return nil, codes.Errorf(codes.FailedToParse, "Unknown modifier: %s. Expected a valid update modifier or pipeline-style update specified as an array", op)
			}
			return nil, codes.Errorf(codes.FailedToParse, "Unknown modifier: %s. Expected a valid update modifier or pipeline-style update specified as an array", op)
		}
		args, ok := el.Value().DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.FailedToParse, "Modifiers operate on fields but we found type %s instead. For example: {$mod: {<field>: ...}} not {%s: %s}", bsonutil.TypeName(el.Value().Type), op, el.Value())
		}
		aels, _ := args.Elements()
		for _, a := range aels {
			path := strings.Split(a.Key(), ".")
			for _, c := range path {
				if c == "" {
					return nil, codes.Errorf(codes.EmptyFieldName, "The update path '%s' contains an empty field name, which is not allowed.", a.Key())
				}
			}
			m := modOp{op: op, path: path, arg: a.Value()}
			if op == "$rename" {
				to, ok := a.Value().StringValueOK()
				if !ok {
					return nil, codes.Errorf(codes.BadValue, "The 'to' field for $rename must be a string: %s: %s", a.Key(), a.Value())
				}
				if to == a.Key() {
					return nil, codes.Errorf(codes.BadValue, "The source and target field for $rename must differ: %s: %q", a.Key(), to)
				}
				if strings.Contains(to, "$") || strings.Contains(a.Key(), "$") {
					return nil, codes.Errorf(codes.BadValue, "The source and target field for $rename must not contain positional operators")
				}
				m.to = strings.Split(to, ".")
			}
			s.mods = append(s.mods, m)
		}
	}
	if err := checkConflicts(s.mods); err != nil {
		return nil, err
	}
	for _, m := range s.mods {
		for _, c := range m.path {
			if strings.HasPrefix(c, "$[") && c != "$[]" {
				id := c[2 : len(c)-1]
				if _, ok := s.arrayFilters[id]; !ok {
					return nil, codes.Errorf(codes.BadValue, "No array filter found for identifier '%s' in path '%s'", id, strings.Join(m.path, "."))
				}
			}
		}
	}
	// A real server applies the operators in field order, which decides
	// where new fields land.
	sort.SliceStable(s.mods, func(i, j int) bool { return lessPath(s.mods[i].path, s.mods[j].path) })
	return s, nil
}

func lessPath(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// checkConflicts rejects two operators on the same path or on a path and
// one of its ancestors, as a real server does.
func checkConflicts(mods []modOp) error {
	type use struct{ path []string }
	var all []use
	for _, m := range mods {
		all = append(all, use{m.path})
		if m.to != nil {
			all = append(all, use{m.to})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i].path, all[j].path
			n := min(len(a), len(b))
			prefix := true
			for k := 0; k < n; k++ {
				if a[k] != b[k] {
					prefix = false
					break
				}
			}
			if prefix {
				long, short := a, b
				if len(b) > len(a) {
					long, short = b, a
				}
				return codes.Errorf(codes.ConflictingUpdateOperators, "Updating the path '%s' would create a conflict at '%s'", strings.Join(long, "."), strings.Join(short, "."))
			}
		}
	}
	return nil
}

// updateCtx carries what applying operators needs besides the document.
type UpdateContext struct {
	now       time.Time
	ts        bson.Timestamp
	query     Matcher           // for the positional $ operator
	original  bsoncore.Document // the document before the update
	filters   map[string]Matcher
	filterDoc map[string]bsoncore.Document
	inserting bool // an upsert is inserting: $setOnInsert applies
	log       []modLog
}

// modLog records a path an operator changed, for updateDescription.
type modLog struct {
	removed bool
	path    []pathComp
}

// applyMods applies the operators to doc in place.
func (s *Update) applyMods(doc *MutableDoc, ctx *UpdateContext) error {
	for _, m := range s.mods {
		if m.op == "$setOnInsert" && !ctx.inserting {
			continue
		}
		paths, err := ctx.expand(doc, m.path)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if err := ctx.applyOne(doc, m, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// expand resolves the positional operators $, $[] and $[id] of a path
// into the concrete paths they name in doc.
func (ctx *UpdateContext) expand(doc *MutableDoc, path []string) ([][]string, error) {
	for i, c := range path {
		if !strings.HasPrefix(c, "$") {
			continue
		}
		arrV, ok := lookupM(doc, path[:i])
		arr, isArr := arrV.(*marr)
		if !ok || !isArr {
			if ctx.inserting && c != "$" {
				return nil, nil
			}
			return nil, codes.Errorf(codes.BadValue, "The path '%s' must exist in the document in order to apply array updates.", strings.Join(path[:i], "."))
		}
		var idxs []int
		switch {
		case c == "$":
			i0, err := ctx.positional(doc, path[:i], arr)
			if err != nil {
				return nil, err
			}
			idxs = []int{i0}
		case c == "$[]":
			for k := range arr.elems {
				idxs = append(idxs, k)
			}
		case strings.HasPrefix(c, "$[") && strings.HasSuffix(c, "]"):
			id := c[2 : len(c)-1]
			fd := ctx.filterDoc[id]
			if fd == nil {
				return nil, codes.Errorf(codes.BadValue, "No array filter found for identifier '%s' in path '%s'", id, strings.Join(path, "."))
			}
			m, err := CompileFilter(fd)
			if err != nil {
				return nil, err
			}
			for k, e := range arr.elems {
				probe := &MutableDoc{keys: []string{id}, vals: []any{e}}
				if m.Matches(probe.Bytes()) {
					idxs = append(idxs, k)
				}
			}
		default:
			return nil, codes.Errorf(codes.BadValue, "Unrecognized positional operator %s in path '%s'", c, strings.Join(path, "."))
		}
		var out [][]string
		for _, k := range idxs {
			p := append(append(append([]string(nil), path[:i]...), bsonutil.ArrayKey(k)), path[i+1:]...)
			rest, err := ctx.expand(doc, p)
			if err != nil {
				return nil, err
			}
			out = append(out, rest...)
		}
		return out, nil
	}
	return [][]string{path}, nil
}

// positional finds the array element the query matched, as the $
// operator needs: the first element that alone satisfies the query.
func (ctx *UpdateContext) positional(doc *MutableDoc, prefix []string, arr *marr) (int, error) {
	if ctx.query != nil && ctx.original != nil {
		orig := DocToMutable(ctx.original)
		if parentV, ok := lookupM(orig, prefix[:len(prefix)-1]); ok {
			if parent, ok := parentV.(*MutableDoc); ok {
				last := prefix[len(prefix)-1]
				saved, _ := parent.Get(last)
				if oa, ok := saved.(*marr); ok {
					for i, e := range oa.elems {
						parent.Set(last, &marr{elems: []any{e}})
						if ctx.query.Matches(orig.Bytes()) {
							return i, nil
						}
					}
				}
			}
		}
	}
	return 0, codes.Errorf(codes.BadValue, "The positional operator did not find the match needed from the query.")
}

// slot resolves path in doc: the container of its last component and the
// components it passed (array positions marked). With create, missing
// documents along the way are created; createdAt is then the number of
// components that existed before.
func slot(doc *MutableDoc, path []string, create bool) (parent any, comps []pathComp, createdAt int, err error) {
	createdAt = -1
	var cur any = doc
	for i, c := range path[:len(path)-1] {
		var next any
		var ok bool
		switch x := cur.(type) {
		case *MutableDoc:
			comps = append(comps, pathComp{name: c})
			next, ok = x.Get(c)
			if !ok && create {
				next = &MutableDoc{}
				x.Set(c, next)
				ok = true
				if createdAt < 0 {
					createdAt = i
				}
			}
		case *marr:
			k, isIdx := arrayIndex(c)
			if !isIdx {
				if create {
					return nil, nil, 0, codes.Errorf(codes.PathNotViable, "Cannot create field '%s' in element {%s: %s}", c, path[i-1], ValueOfM(x))
				}
				return nil, nil, 0, nil
			}
			comps = append(comps, pathComp{idx: k, isIdx: true})
			if k < len(x.elems) {
				next, ok = x.elems[k], true
			} else if create {
				for len(x.elems) < k {
					x.elems = append(x.elems, bsoncore.Value{Type: bsoncore.TypeNull})
				}
				next = &MutableDoc{}
				x.elems = append(x.elems, next)
				ok = true
				if createdAt < 0 {
					createdAt = i
				}
			}
		default:
			if create {
				return nil, nil, 0, codes.Errorf(codes.PathNotViable, "Cannot create field '%s' in element {%s: %s}", c, path[i-1], ValueOfM(cur))
			}
			return nil, nil, 0, nil
		}
		if !ok {
			return nil, nil, 0, nil
		}
		cur = next
	}
	last := path[len(path)-1]
	switch x := cur.(type) {
	case *MutableDoc:
		comps = append(comps, pathComp{name: last})
	case *marr:
		k, isIdx := arrayIndex(last)
		if !isIdx {
			if create {
				return nil, nil, 0, codes.Errorf(codes.PathNotViable, "Cannot create field '%s' in element {%s: %s}", last, pathOr(path), ValueOfM(x))
			}
			return nil, nil, 0, nil
		}
		comps = append(comps, pathComp{idx: k, isIdx: true})
	default:
		if create {
			return nil, nil, 0, codes.Errorf(codes.PathNotViable, "Cannot create field '%s' in element {%s: %s}", last, pathOr(path), ValueOfM(cur))
		}
		return nil, nil, 0, nil
	}
	return cur, comps, createdAt, nil
}

func pathOr(path []string) string {
	if len(path) > 1 {
		return path[len(path)-2]
	}
	return path[0]
}

func getSlot(parent any, c pathComp) (any, bool) {
	switch x := parent.(type) {
	case *MutableDoc:
		return x.Get(c.name)
	case *marr:
		if c.idx < len(x.elems) {
			return x.elems[c.idx], true
		}
	}
	return nil, false
}

func setSlot(parent any, c pathComp, v any) {
	switch x := parent.(type) {
	case *MutableDoc:
		x.Set(c.name, v)
	case *marr:
		for len(x.elems) < c.idx {
			x.elems = append(x.elems, bsoncore.Value{Type: bsoncore.TypeNull})
		}
		if c.idx < len(x.elems) {
			x.elems[c.idx] = v
		} else {
			x.elems = append(x.elems, v)
		}
	}
}

// logSet records that the value at comps changed; when the update created
// documents on the way, the change is the first created field.
func (ctx *UpdateContext) logSet(comps []pathComp, createdAt int) {
	if createdAt >= 0 {
		comps = comps[:createdAt+1]
	}
	ctx.log = append(ctx.log, modLog{path: comps})
}

func (ctx *UpdateContext) applyOne(doc *MutableDoc, m modOp, path []string) error {
	pathStr := strings.Join(path, ".")
	switch m.op {
	case "$unset":
		parent, comps, _, err := slot(doc, path, false)
		if err != nil || parent == nil {
			return err
		}
		last := comps[len(comps)-1]
		switch x := parent.(type) {
		case *MutableDoc:
			if x.Del(last.name) {
				ctx.log = append(ctx.log, modLog{removed: true, path: comps})
			}
		case *marr:
			if last.idx < len(x.elems) {
				x.elems[last.idx] = bsoncore.Value{Type: bsoncore.TypeNull}
				ctx.log = append(ctx.log, modLog{path: comps})
			}
		}
		return nil
	case "$rename":
		parent, comps, _, err := slot(doc, path, false)
		if err != nil || parent == nil {
			return err
		}
		pd, ok := parent.(*MutableDoc)
		if !ok {
			return codes.Errorf(codes.BadValue, "The source field cannot be an array element, '%s' in doc with %s", pathStr, ValueOfM(parent))
		}
		v, ok := pd.Get(comps[len(comps)-1].name)
		if !ok {
			return nil
		}
		tparent, tcomps, created, err := slot(doc, m.to, true)
		if err != nil {
			return err
		}
		if _, isArr := tparent.(*marr); isArr {
			return codes.Errorf(codes.BadValue, "The destination field cannot be an array element, '%s'", strings.Join(m.to, "."))
		}
		pd.Del(comps[len(comps)-1].name)
		ctx.log = append(ctx.log, modLog{removed: true, path: comps})
		setSlot(tparent, tcomps[len(tcomps)-1], v)
		ctx.logSet(tcomps, created)
		return nil
	}

	parent, comps, created, err := slot(doc, path, true)
	if err != nil {
		return err
	}
	last := comps[len(comps)-1]
	cur, exists := getSlot(parent, last)
	set := func(v any) {
		setSlot(parent, last, v)
		ctx.logSet(comps, created)
	}
	switch m.op {
	case "$set", "$setOnInsert":
		if exists && sameM(cur, toM(m.arg)) {
			return nil
		}
		set(toM(m.arg))
	case "$inc", "$mul":
		if _, ok := bsonutil.NumberOf(m.arg); !ok && m.arg.Type != bsoncore.TypeDecimal128 {
			verb := "increment"
			if m.op == "$mul" {
				verb = "multiply"
			}
			return codes.Errorf(codes.TypeMismatch, "Cannot %s with non-numeric argument: {%s: %s}", verb, pathStr, m.arg)
		}
		if !exists {
			if m.op == "$mul" {
				set(zeroLike(m.arg))
			} else {
				set(m.arg)
			}
			return nil
		}
		cv, ok := cur.(bsoncore.Value)
		if !ok || bsonutil.TypeBracket(cv.Type) != 10 {
			return codes.Errorf(codes.TypeMismatch, "Cannot apply %s to a value of non-numeric type. {_id: %s} has the field '%s' of non-numeric type %s", m.op, idOfM(doc), last, typeNameM(cur))
		}
		nv, err := arith(cv, m.arg, m.op == "$mul")
		if err != nil {
			return err
		}
		if cv.Type == nv.Type && bytes.Equal(cv.Data, nv.Data) {
			return nil
		}
		set(nv)
	case "$min", "$max":
		if exists {
			c := bsonutil.CompareValues(m.arg, ValueOfM(cur))
			if m.op == "$min" && c >= 0 || m.op == "$max" && c <= 0 {
				return nil
			}
		}
		set(toM(m.arg))
	case "$currentDate":
		typ := "date"
		if d, ok := m.arg.DocumentOK(); ok {
			t, ok := d.Lookup("$type").StringValueOK()
			if !ok || (t != "date" && t != "timestamp") {
				return codes.Errorf(codes.BadValue, "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}")
			}
			typ = t
		} else if m.arg.Type != bsoncore.TypeBoolean {
			return codes.Errorf(codes.BadValue, "%s is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'}).", bsonutil.TypeName(m.arg.Type))
		}
		if typ == "timestamp" {
			set(bsoncore.Value{Type: bsoncore.TypeTimestamp, Data: bsoncore.AppendTimestamp(nil, ctx.ts.T, ctx.ts.I)})
		} else {
			set(bsoncore.Value{Type: bsoncore.TypeDateTime, Data: bsoncore.AppendDateTime(nil, ctx.now.UnixMilli())})
		}
	case "$push", "$addToSet":
		return ctx.push(doc, m, parent, comps, created, cur, exists)
	case "$pop", "$pull", "$pullAll":
		if !exists {
			return nil
		}
		arr, ok := cur.(*marr)
		if !ok {
			return codes.Errorf(codes.BadValue, "Cannot apply %s to a non-array value", m.op)
		}
		var keep []any
		switch m.op {
		case "$pop":
			n, ok := bsonutil.NumberOf(m.arg)
			if !ok || (n != 1 && n != -1) {
				return codes.Errorf(codes.FailedToParse, "$pop expects 1 or -1, found: %s", m.arg)
			}
			if len(arr.elems) == 0 {
				return nil
			}
			if n == 1 {
				keep = arr.elems[:len(arr.elems)-1]
			} else {
				keep = arr.elems[1:]
			}
		case "$pull":
			match, err := pullMatcher(m.arg)
			if err != nil {
				return err
			}
			for _, e := range arr.elems {
				if !match(ValueOfM(e)) {
					keep = append(keep, e)
				}
			}
		case "$pullAll":
			all, ok := m.arg.ArrayOK()
			if !ok {
				return codes.Errorf(codes.BadValue, "$pullAll requires an array argument but was given a %s", bsonutil.TypeName(m.arg.Type))
			}
			vals, _ := all.Values()
			for _, e := range arr.elems {
				ev := ValueOfM(e)
				drop := false
				for _, v := range vals {
					if bsonutil.ValuesEqual(ev, v) {
						drop = true
						break
					}
				}
				if !drop {
					keep = append(keep, e)
				}
			}
		}
		if len(keep) == len(arr.elems) {
			return nil
		}
		set(&marr{elems: append([]any(nil), keep...)})
	default:
		return codes.Errorf(codes.FailedToParse, "Unknown modifier: %s", m.op)
	}
	return nil
}

func idOfM(doc *MutableDoc) bsoncore.Value {
	v, _ := doc.Get("_id")
	return ValueOfM(v)
}

// pullMatcher compiles a $pull condition: a value (equality), operators on
// the element ({$gte: 6}) or a filter on document elements ({a: 1}).
func pullMatcher(arg bsoncore.Value) (func(bsoncore.Value) bool, error) {
	if d, ok := arg.DocumentOK(); ok {
		first, _ := bsonutil.FirstKey(d)
		if strings.HasPrefix(first, "$") && first != "$and" && first != "$or" && first != "$nor" {
			p, err := compileOps(d)
			if err != nil {
				return nil, err
			}
			return func(v bsoncore.Value) bool { return p([]cand{{v: v}}) }, nil
		}
		m, err := CompileFilter(d)
		if err != nil {
			return nil, err
		}
		return func(v bsoncore.Value) bool {
			ed, ok := v.DocumentOK()
			return ok && m.Matches(ed)
		}, nil
	}
	return func(v bsoncore.Value) bool { return bsonutil.ValuesEqual(v, arg) }, nil
}

// push applies $push and $addToSet, with $each, $position, $slice and
// $sort for $push. Appends are logged element by element, other changes
// as the whole array.
func (ctx *UpdateContext) push(doc *MutableDoc, m modOp, parent any, comps []pathComp, created int, cur any, exists bool) error {
	var arr *marr
	if exists {
		a, ok := cur.(*marr)
		if !ok {
			return codes.Errorf(codes.BadValue, "The field '%s' must be an array but is of type %s in document {_id: %s}", joinComps(comps), typeNameM(cur), idOfM(doc))
		}
		arr = a
	}
	items := []bsoncore.Value{m.arg}
	position, slice, hasSlice := -1, 0, false
	var sortSpec bsoncore.Value
	if d, ok := m.arg.DocumentOK(); ok {
		if each := d.Lookup("$each"); each.Type != 0 {
			ea, ok := each.ArrayOK()
			if !ok {
				return codes.Errorf(codes.BadValue, "The argument to $each in %s must be an array but it was of type: %s", m.op, bsonutil.TypeName(each.Type))
			}
			items, _ = ea.Values()
			elems, _ := d.Elements()
			for _, el := range elems {
				switch el.Key() {
				case "$each":
				case "$position":
					if m.op != "$push" {
						return codes.Errorf(codes.BadValue, "Found unexpected fields after $each in $addToSet: %s", m.arg)
					}
					n, ok := bsonutil.AsInt64(el.Value())
					if !ok {
						return codes.Errorf(codes.BadValue, "The value for $position must be an integer value, not of type: %s", bsonutil.TypeName(el.Value().Type))
					}
					position = int(n)
				case "$slice":
					if m.op != "$push" {
						return codes.Errorf(codes.BadValue, "Found unexpected fields after $each in $addToSet: %s", m.arg)
					}
					n, ok := bsonutil.AsInt64(el.Value())
					if !ok {
						return codes.Errorf(codes.BadValue, "The value for $slice must be an integer value but was given type: %s", bsonutil.TypeName(el.Value().Type))
					}
					slice, hasSlice = int(n), true
				case "$sort":
					if m.op != "$push" {
						return codes.Errorf(codes.BadValue, "Found unexpected fields after $each in $addToSet: %s", m.arg)
					}
					sortSpec = el.Value()
				default:
					return codes.Errorf(codes.BadValue, "Unrecognized clause in %s: %s", m.op, el.Key())
				}
			}
		}
	}
	var before []any
	if arr != nil {
		before = arr.elems
	}
	elems := append([]any(nil), before...)
	var added []any
	for _, it := range items {
		if m.op == "$addToSet" {
			dup := false
			for _, e := range elems {
				if bsonutil.ValuesEqual(ValueOfM(e), it) {
					dup = true
					break
				}
			}
			for _, e := range added {
				if bsonutil.ValuesEqual(ValueOfM(e), it) {
					dup = true
					break
				}
			}
			if dup {
				continue
			}
		}
		added = append(added, toM(it))
	}
	pureAppend := true
	if position >= 0 && position < len(elems) || position < 0 && position != -1 {
		pureAppend = false
		p := position
		if p < 0 {
			p = max(len(elems)+p, 0)
		}
		elems = append(elems[:p:p], append(added, elems[p:]...)...)
	} else {
		elems = append(elems, added...)
	}
	if sortSpec.Type != 0 {
		pureAppend = false
		if err := sortElems(elems, sortSpec); err != nil {
			return err
		}
	}
	if hasSlice {
		switch {
		case slice >= 0 && slice < len(elems):
			elems = elems[:slice]
		case slice < 0 && -slice < len(elems):
			elems = elems[len(elems)+slice:]
		}
		if len(elems) != len(before)+len(added) {
			pureAppend = false
		}
	}
	if arr != nil && sameM(arr, &marr{elems: elems}) {
		return nil
	}
	setSlot(parent, comps[len(comps)-1], &marr{elems: elems})
	if arr == nil || !pureAppend {
		ctx.logSet(comps, created)
		return nil
	}
	for i := len(before); i < len(elems); i++ {
		ctx.log = append(ctx.log, modLog{path: withComp(comps, pathComp{idx: i, isIdx: true})})
	}
	return nil
}

func sortElems(elems []any, spec bsoncore.Value) error {
	if d, ok := spec.DocumentOK(); ok {
		keys, err := ParseSort(d)
		if err != nil {
			return err
		}
		sort.SliceStable(elems, func(i, j int) bool {
			di, _ := elems[i].(*MutableDoc)
			dj, _ := elems[j].(*MutableDoc)
			var bi, bj bsoncore.Document
			if di != nil {
				bi = di.Bytes()
			}
			if dj != nil {
				bj = dj.Bytes()
			}
			return CompareBySort(bi, bj, keys) < 0
		})
		return nil
	}
	n, ok := bsonutil.AsInt64(spec)
	if !ok || (n != 1 && n != -1) {
		return codes.Errorf(codes.BadValue, "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields")
	}
	sort.SliceStable(elems, func(i, j int) bool {
		c := bsonutil.CompareValues(ValueOfM(elems[i]), ValueOfM(elems[j]))
		if n < 0 {
			c = -c
		}
		return c < 0
	})
	return nil
}

func zeroLike(v bsoncore.Value) bsoncore.Value {
	switch v.Type {
	case bsoncore.TypeInt32:
		return bsoncore.Value{Type: v.Type, Data: bsoncore.AppendInt32(nil, 0)}
	case bsoncore.TypeInt64:
		return bsoncore.Value{Type: v.Type, Data: bsoncore.AppendInt64(nil, 0)}
	case bsoncore.TypeDecimal128:
		z := bson.NewDecimal128(0x3040000000000000, 0)
		h, l := z.GetBytes()
		return bsoncore.Value{Type: v.Type, Data: bsoncore.AppendDecimal128(nil, h, l)}
	}
	return bsoncore.Value{Type: bsoncore.TypeDouble, Data: bsoncore.AppendDouble(nil, 0)}
}

// arith adds or multiplies two numbers with MongoDB's type promotion:
// int32 widens to int64 on overflow, a double or decimal operand makes the
// result that type, and an int64 overflow is an error.
func arith(a, b bsoncore.Value, mul bool) (bsoncore.Value, error) {
	if a.Type == bsoncore.TypeDecimal128 || b.Type == bsoncore.TypeDecimal128 {
		fa, nanA := bsonutil.BigOf(a)
		fb, nanB := bsonutil.BigOf(b)
		if nanA || nanB {
			return decimalValue("NaN")
		}
		r := new(big.Float).SetPrec(256)
		if mul {
			r.Mul(fa, fb)
		} else {
			r.Add(fa, fb)
		}
		return decimalValue(r.Text('g', 34))
	}
	if a.Type == bsoncore.TypeDouble || b.Type == bsoncore.TypeDouble {
		fa, _ := bsonutil.NumberOf(a)
		fb, _ := bsonutil.NumberOf(b)
		r := fa + fb
		if mul {
			r = fa * fb
		}
		return bsoncore.Value{Type: bsoncore.TypeDouble, Data: bsoncore.AppendDouble(nil, r)}, nil
	}
	ia, _ := bsonutil.IntOf(a)
	ib, _ := bsonutil.IntOf(b)
	ra := new(big.Int).SetInt64(ia)
	if mul {
		ra.Mul(ra, big.NewInt(ib))
	} else {
		ra.Add(ra, big.NewInt(ib))
	}
	if !ra.IsInt64() {
		return bsoncore.Value{}, codes.Errorf(codes.BadValue, "Failed to apply update: integer overflow computing %d and %d", ia, ib)
	}
	r := ra.Int64()
	if a.Type == bsoncore.TypeInt32 && b.Type == bsoncore.TypeInt32 && r >= math.MinInt32 && r <= math.MaxInt32 {
		return bsoncore.Value{Type: bsoncore.TypeInt32, Data: bsoncore.AppendInt32(nil, int32(r))}, nil
	}
	return bsoncore.Value{Type: bsoncore.TypeInt64, Data: bsoncore.AppendInt64(nil, r)}, nil
}

func decimalValue(s string) (bsoncore.Value, error) {
	d, err := bson.ParseDecimal128(s)
	if err != nil {
		return bsoncore.Value{}, codes.Errorf(codes.BadValue, "decimal arithmetic: %v", err)
	}
	h, l := d.GetBytes()
	return bsoncore.Value{Type: bsoncore.TypeDecimal128, Data: bsoncore.AppendDecimal128(nil, h, l)}, nil
}

// describeMods turns the operator log into an updateDescription: every
// changed path with its new value, every removed path. A path under
// another logged path, or whose value did not change, is left out.
func describeMods(ctx *UpdateContext, oldDoc, newDoc *MutableDoc) *UpdateDesc {
	u := &UpdateDesc{}
	type logged struct {
		key string
		l   modLog
	}
	var sets []logged
	seen := map[string]bool{}
	for _, l := range ctx.log {
		k := joinComps(l.path)
		if seen[k] {
			continue
		}
		seen[k] = true
		sets = append(sets, logged{k, l})
	}
	covered := func(k string) bool {
		for _, s := range sets {
			if !s.l.removed && s.key != k && strings.HasPrefix(k, s.key+".") {
				return true
			}
		}
		return false
	}
	for _, s := range sets {
		if covered(s.key) {
			continue
		}
		names := make([]string, len(s.l.path))
		for i, c := range s.l.path {
			names[i] = c.String()
		}
		nv, inNew := lookupM(newDoc, names)
		if s.l.removed {
			if !inNew {
				u.removed = append(u.removed, s.l.path)
			}
			continue
		}
		if !inNew {
			continue
		}
		if ov, inOld := lookupM(oldDoc, names); inOld && sameM(ov, nv) {
			continue
		}
		u.updated = append(u.updated, descField{s.l.path, ValueOfM(nv)})
	}
	return u
}
