package query

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Matcher is a compiled query filter.
type Matcher interface {
	Matches(doc bsoncore.Document) bool
}

// CompileFilter compiles a query filter document: field conditions with
// dotted paths and array semantics, the comparison, element, array and
// logical operators. An operator mongotest does not know is an error
// naming it, never a silently wrong answer.
func CompileFilter(f bsoncore.Document) (Matcher, error) {
	elems, err := f.Elements()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "filter: %v", err)
	}
	and := make(MatchAll, 0, len(elems))
	for _, el := range elems {
		m, err := compileFilterElem(el.Key(), el.Value())
		if err != nil {
			return nil, err
		}
		if m != nil {
			and = append(and, m)
		}
	}
	return and, nil
}

// unsupportedTopLevel are top-level operators a real server knows that
// mongotest does not evaluate.
var unsupportedTopLevel = map[string]bool{
	"$where": true, "$text": true, "$jsonSchema": true, "$sampleRate": true, "$alwaysTrue": true, "$alwaysFalse": true,
}

// unsupportedFieldOps are field operators a real server knows that
// mongotest does not evaluate.
var unsupportedFieldOps = map[string]bool{
	"$geoWithin": true, "$geoIntersects": true, "$near": true, "$nearSphere": true, "$within": true,
	"$bitsAllSet": true, "$bitsAllClear": true, "$bitsAnySet": true, "$bitsAnyClear": true,
}

func compileFilterElem(k string, v bsoncore.Value) (Matcher, error) {
	switch k {
	case "$and", "$or", "$nor":
		subs, err := compileFilterList(k, v)
		if err != nil {
			return nil, err
		}
		switch k {
		case "$and":
			return MatchAll(subs), nil
		case "$or":
			return orMatcher(subs), nil
		}
		return notMatcher{orMatcher(subs)}, nil
	case "$comment":
		return nil, nil
	case "$expr":
		x, err := compileAggExpr(v)
		if err != nil {
			return nil, err
		}
		return exprMatcher{x}, nil
	}
	if strings.HasPrefix(k, "$") {
		if unsupportedTopLevel[k] {
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the query operator %s", k)
		}
		return nil, codes.Errorf(codes.BadValue, "unknown top level operator: %s. If you have a field name that starts with a '$' symbol, consider using $getField or $setField.", k)
	}
	if k == "" {
		return nil, codes.Errorf(codes.BadValue, "field names in a filter must not be empty")
	}
	p, err := compileFieldCond(v)
	if err != nil {
		return nil, err
	}
	return fieldMatcher{path: strings.Split(k, "."), p: p}, nil
}

func compileFilterList(op string, v bsoncore.Value) ([]Matcher, error) {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.BadValue, "%s must be an array", op)
	}
	vals, _ := arr.Values()
	if len(vals) == 0 {
		return nil, codes.Errorf(codes.BadValue, "%s/$or/$nor must be a nonempty array", op)
	}
	subs := make([]Matcher, 0, len(vals))
	for _, sv := range vals {
		sd, ok := sv.DocumentOK()
		if !ok {
			return nil, codes.Errorf(codes.BadValue, "%s argument's entries must be objects", op)
		}
		m, err := CompileFilter(sd)
		if err != nil {
			return nil, err
		}
		subs = append(subs, m)
	}
	return subs, nil
}

// MatchAll matches a document that all its matchers match; MatchAll(nil)
// matches every document.
type MatchAll []Matcher

// Matches reports whether every matcher of a matches doc.
func (a MatchAll) Matches(doc bsoncore.Document) bool {
	for _, m := range a {
		if !m.Matches(doc) {
			return false
		}
	}
	return true
}

type orMatcher []Matcher

func (o orMatcher) Matches(doc bsoncore.Document) bool {
	for _, m := range o {
		if m.Matches(doc) {
			return true
		}
	}
	return false
}

type notMatcher struct{ m Matcher }

func (n notMatcher) Matches(doc bsoncore.Document) bool { return !n.m.Matches(doc) }

// cand is one value a path reaches in a document. A missing value has
// Type 0. arrElem marks an element reached by expanding an array at the
// end of the path (which $size and $elemMatch ignore).
type cand struct {
	v       bsoncore.Value
	arrElem bool
}

// pred decides a condition over all the values a path reaches.
type pred func(cs []cand) bool

type fieldMatcher struct {
	path []string
	p    pred
}

func (m fieldMatcher) Matches(doc bsoncore.Document) bool {
	return m.p(PathValues(doc, m.path))
}

// PathValues returns the values path reaches in doc, MongoDB style: a path
// through an array reaches into each document element, a numeric component
// indexes the array, and an array at the end yields itself and each of
// its elements. An unreachable path yields one missing value.
func PathValues(doc bsoncore.Document, path []string) []cand {
	var out []cand
	walkPath(bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: doc}, path, &out)
	return out
}

func walkPath(v bsoncore.Value, path []string, out *[]cand) {
	if len(path) == 0 {
		*out = append(*out, cand{v: v})
		if arr, ok := v.ArrayOK(); ok {
			vals, _ := arr.Values()
			for _, e := range vals {
				*out = append(*out, cand{v: e, arrElem: true})
			}
		}
		return
	}
	switch v.Type {
	case bsoncore.TypeEmbeddedDocument:
		d, _ := v.DocumentOK()
		child, err := d.LookupErr(path[0])
		if err != nil {
			*out = append(*out, cand{})
			return
		}
		walkPath(child, path[1:], out)
	case bsoncore.TypeArray:
		arr, _ := v.ArrayOK()
		vals, _ := arr.Values()
		n := len(*out)
		if i, ok := arrayIndex(path[0]); ok && i < len(vals) {
			walkPath(vals[i], path[1:], out)
		}
		for _, e := range vals {
			if e.Type == bsoncore.TypeEmbeddedDocument {
				walkPath(e, path, out)
			}
		}
		if len(*out) == n {
			*out = append(*out, cand{})
		}
	default:
		*out = append(*out, cand{})
	}
}

// arrayIndex parses a path component that names an array position.
func arrayIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// compileFieldCond compiles the value of a field condition: a literal
// (equality) or a document of operators.
func compileFieldCond(v bsoncore.Value) (pred, error) {
	d, ok := v.DocumentOK()
	if ok {
		if first, _ := bsonutil.FirstKey(d); strings.HasPrefix(first, "$") {
			return compileOps(d)
		}
	}
	if v.Type == bsoncore.TypeRegex {
		return regexValuePred(v)
	}
	return eqPred(v), nil
}

// compileOps compiles {$op: arg, …}; every operator must hold.
func compileOps(d bsoncore.Document) (pred, error) {
	elems, err := d.Elements()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "filter: %v", err)
	}
	var preds []pred
	var regexOpts string
	hasRegex := false
	for _, el := range elems {
		if el.Key() == "$options" {
			s, ok := el.Value().StringValueOK()
			if !ok {
				return nil, codes.Errorf(codes.BadValue, "$options has to be a string")
			}
			regexOpts = s
		}
		if el.Key() == "$regex" {
			hasRegex = true
		}
	}
	if regexOpts != "" && !hasRegex {
		return nil, codes.Errorf(codes.BadValue, "$options needs a $regex")
	}
	for _, el := range elems {
		op, arg := el.Key(), el.Value()
		var p pred
		switch op {
		case "$options":
			continue
		case "$regex":
			p, err = regexOpPred(arg, regexOpts)
		default:
			p, err = compileOp(op, arg)
		}
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	if len(preds) == 1 {
		return preds[0], nil
	}
	return func(cs []cand) bool {
		for _, p := range preds {
			if !p(cs) {
				return false
			}
		}
		return true
	}, nil
}

func compileOp(op string, arg bsoncore.Value) (pred, error) {
	switch op {
	case "$eq":
		return eqPred(arg), nil
	case "$ne":
		p := eqPred(arg)
		return func(cs []cand) bool { return !p(cs) }, nil
	case "$gt", "$gte", "$lt", "$lte":
		return cmpPred(op, arg), nil
	case "$in", "$nin":
		p, err := inPred(op, arg)
		if err != nil {
			return nil, err
		}
		if op == "$nin" {
			return func(cs []cand) bool { return !p(cs) }, nil
		}
		return p, nil
	case "$exists":
		want := Truthy(arg)
		return func(cs []cand) bool {
			for _, c := range cs {
				if c.v.Type != 0 {
					return want
				}
			}
			return !want
		}, nil
	case "$type":
		return typePred(arg)
	case "$size":
		n, ok := bsonutil.AsInt64(arg)
		if !ok {
			return nil, codes.Errorf(codes.BadValue, "$size needs a number")
		}
		if n < 0 {
			return nil, codes.Errorf(codes.BadValue, "$size may not be negative")
		}
		return func(cs []cand) bool {
			for _, c := range cs {
				if c.arrElem {
					continue
				}
				if arr, ok := c.v.ArrayOK(); ok {
					vals, _ := arr.Values()
					if int64(len(vals)) == n {
						return true
					}
				}
			}
			return false
		}, nil
	case "$all":
		return allPred(arg)
	case "$elemMatch":
		return elemMatchPred(arg)
	case "$not":
		var inner pred
		var err error
		switch {
		case arg.Type == bsoncore.TypeRegex:
			inner, err = regexValuePred(arg)
		case arg.Type == bsoncore.TypeEmbeddedDocument:
			d, _ := arg.DocumentOK()
			if len(d) <= 5 {
				return nil, codes.Errorf(codes.BadValue, "$not cannot be empty")
			}
			if first, _ := bsonutil.FirstKey(d); !strings.HasPrefix(first, "$") {
				return nil, codes.Errorf(codes.BadValue, "$not needs a regex or a document of operators")
			}
			inner, err = compileOps(d)
		default:
			return nil, codes.Errorf(codes.BadValue, "$not needs a regex or a document")
		}
		if err != nil {
			return nil, err
		}
		return func(cs []cand) bool { return !inner(cs) }, nil
	case "$mod":
		return modPred(arg)
	}
	if unsupportedFieldOps[op] {
		return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the query operator %s", op)
	}
	return nil, codes.Errorf(codes.BadValue, "unknown operator: %s", op)
}

// Truthy reports whether v counts as true, as $expr and index options read it.
func Truthy(v bsoncore.Value) bool {
	switch v.Type {
	case bsoncore.TypeBoolean:
		return v.Boolean()
	case bsoncore.TypeNull, bsoncore.TypeUndefined, 0:
		return false
	}
	if f, ok := bsonutil.NumberOf(v); ok {
		return f != 0
	}
	return true
}

// eqPred matches when any value equals arg; a null arg also matches a
// missing field.
func eqPred(arg bsoncore.Value) pred {
	isNull := arg.Type == bsoncore.TypeNull
	return func(cs []cand) bool {
		for _, c := range cs {
			if c.v.Type == 0 {
				if isNull {
					return true
				}
				continue
			}
			if c.v.Type == arg.Type || bsonutil.TypeBracket(c.v.Type) == bsonutil.TypeBracket(arg.Type) {
				if bsonutil.CompareValues(c.v, arg) == 0 {
					return true
				}
			}
		}
		return false
	}
}

// cmpPred matches when any value of arg's type bracket compares as op
// says. MinKey and MaxKey arguments compare across brackets.
func cmpPred(op string, arg bsoncore.Value) pred {
	ab := bsonutil.TypeBracket(arg.Type)
	cross := arg.Type == bsoncore.TypeMinKey || arg.Type == bsoncore.TypeMaxKey
	orEqual := op == "$gte" || op == "$lte"
	return func(cs []cand) bool {
		for _, c := range cs {
			if c.v.Type == 0 {
				if orEqual && arg.Type == bsoncore.TypeNull {
					return true
				}
				continue
			}
			if !cross && bsonutil.TypeBracket(c.v.Type) != ab {
				continue
			}
			r := bsonutil.CompareValues(c.v, arg)
			switch op {
			case "$gt":
				if r > 0 {
					return true
				}
			case "$gte":
				if r >= 0 {
					return true
				}
			case "$lt":
				if r < 0 {
					return true
				}
			case "$lte":
				if r <= 0 {
					return true
				}
			}
		}
		return false
	}
}

func inPred(op string, arg bsoncore.Value) (pred, error) {
	arr, ok := arg.ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.BadValue, "%s needs an array", op)
	}
	vals, _ := arr.Values()
	preds := make([]pred, 0, len(vals))
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			if first, _ := bsonutil.FirstKey(d); strings.HasPrefix(first, "$") {
				return nil, codes.Errorf(codes.BadValue, "cannot nest $ under %s", op)
			}
		}
		if v.Type == bsoncore.TypeRegex {
			p, err := regexValuePred(v)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
			continue
		}
		preds = append(preds, eqPred(v))
	}
	return func(cs []cand) bool {
		for _, p := range preds {
			if p(cs) {
				return true
			}
		}
		return false
	}, nil
}

func typePred(arg bsoncore.Value) (pred, error) {
	var args []bsoncore.Value
	if arr, ok := arg.ArrayOK(); ok {
		args, _ = arr.Values()
	} else {
		args = []bsoncore.Value{arg}
	}
	want := map[bsoncore.Type]bool{}
	number := false
	for _, a := range args {
		var n int
		if s, ok := a.StringValueOK(); ok {
			if s == "number" {
				number = true
				continue
			}
			t, ok := bsonutil.TypeAliases[s]
			if !ok {
				return nil, codes.Errorf(codes.BadValue, "Unknown type name alias: %s", s)
			}
			n = t
		} else if i, ok := bsonutil.AsInt64(a); ok {
			n = int(i)
		} else {
			return nil, codes.Errorf(codes.TypeMismatch, "type must be represented as a number or a string")
		}
		if n == -1 {
			want[bsoncore.TypeMinKey] = true
		} else {
			want[bsoncore.Type(byte(n))] = true
		}
	}
	return func(cs []cand) bool {
		for _, c := range cs {
			if c.v.Type == 0 {
				continue
			}
			if want[c.v.Type] || number && bsonutil.TypeBracket(c.v.Type) == 10 {
				return true
			}
		}
		return false
	}, nil
}

func allPred(arg bsoncore.Value) (pred, error) {
	arr, ok := arg.ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.BadValue, "$all needs an array")
	}
	vals, _ := arr.Values()
	preds := make([]pred, 0, len(vals))
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			if first, _ := bsonutil.FirstKey(d); first == "$elemMatch" {
				p, err := elemMatchPred(d.Lookup("$elemMatch"))
				if err != nil {
					return nil, err
				}
				preds = append(preds, p)
				continue
			} else if strings.HasPrefix(first, "$") {
				return nil, codes.Errorf(codes.BadValue, "no $ expressions in $all")
			}
		}
		if v.Type == bsoncore.TypeRegex {
			p, err := regexValuePred(v)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
			continue
		}
		preds = append(preds, eqPred(v))
	}
	return func(cs []cand) bool {
		if len(preds) == 0 {
			return false
		}
		for _, p := range preds {
			if !p(cs) {
				return false
			}
		}
		return true
	}, nil
}

// elemMatchPred matches arrays with an element that satisfies every
// condition: operators on the element itself ({$gt: 1}) or a filter on
// document elements ({a: 1}).
func elemMatchPred(arg bsoncore.Value) (pred, error) {
	d, ok := arg.DocumentOK()
	if !ok {
		return nil, codes.Errorf(codes.BadValue, "$elemMatch needs an Object")
	}
	var onElem func(e bsoncore.Value) bool
	first, _ := bsonutil.FirstKey(d)
	if strings.HasPrefix(first, "$") && first != "$and" && first != "$or" && first != "$nor" && first != "$expr" && first != "$comment" {
		p, err := compileOps(d)
		if err != nil {
			return nil, err
		}
		onElem = func(e bsoncore.Value) bool {
			c := []cand{{v: e}}
			if arr, ok := e.ArrayOK(); ok {
				vals, _ := arr.Values()
				for _, x := range vals {
					c = append(c, cand{v: x, arrElem: true})
				}
			}
			return p(c)
		}
	} else {
		m, err := CompileFilter(d)
		if err != nil {
			return nil, err
		}
		onElem = func(e bsoncore.Value) bool {
			ed, ok := e.DocumentOK()
			return ok && m.Matches(ed)
		}
	}
	return func(cs []cand) bool {
		for _, c := range cs {
			if c.arrElem {
				continue
			}
			arr, ok := c.v.ArrayOK()
			if !ok {
				continue
			}
			vals, _ := arr.Values()
			for _, e := range vals {
				if onElem(e) {
					return true
				}
			}
		}
		return false
	}, nil
}

func modPred(arg bsoncore.Value) (pred, error) {
	arr, ok := arg.ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.BadValue, "malformed mod, needs to be an array")
	}
	vals, _ := arr.Values()
	if len(vals) != 2 {
		return nil, codes.Errorf(codes.BadValue, "malformed mod, not enough elements")
	}
	div, ok1 := bsonutil.NumberOf(vals[0])
	rem, ok2 := bsonutil.NumberOf(vals[1])
	if !ok1 || !ok2 {
		return nil, codes.Errorf(codes.BadValue, "malformed mod, divisor and remainder must be numbers")
	}
	d, r := int64(div), int64(rem)
	if d == 0 {
		return nil, codes.Errorf(codes.BadValue, "divisor cannot be 0")
	}
	return func(cs []cand) bool {
		for _, c := range cs {
			f, ok := bsonutil.NumberOf(c.v)
			if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			if int64(f)%d == r {
				return true
			}
		}
		return false
	}, nil
}

// regexOpPred compiles {$regex: pattern, $options: opts}.
func regexOpPred(arg bsoncore.Value, opts string) (pred, error) {
	var pattern string
	switch arg.Type {
	case bsoncore.TypeString:
		pattern = arg.StringValue()
	case bsoncore.TypeRegex:
		p, o, _ := arg.RegexOK()
		pattern = p
		if opts == "" {
			opts = o
		}
	default:
		return nil, codes.Errorf(codes.BadValue, "$regex has to be a string")
	}
	return regexPred(pattern, opts)
}

func regexValuePred(v bsoncore.Value) (pred, error) {
	p, o, _ := v.RegexOK()
	return regexPred(p, o)
}

// regexPred matches string values against a PCRE-style pattern, using Go's
// RE2 engine for the common subset.
func regexPred(pattern, opts string) (pred, error) {
	flags := ""
	for _, o := range opts {
		switch o {
		case 'i', 'm', 's':
			flags += string(o)
		case 'u':
		case 'x':
			return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support the regex option 'x'")
		default:
			return nil, codes.Errorf(codes.BadValue, "invalid flag in regex options: %c", o)
		}
	}
	expr := pattern
	if flags != "" {
		expr = "(?" + flags + ")" + pattern
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, codes.Errorf(codes.BadValue, "Regular expression is invalid: %v", err)
	}
	return func(cs []cand) bool {
		for _, c := range cs {
			if s, ok := bsonutil.StringOf(c.v); ok && re.MatchString(s) {
				return true
			}
			if p, o, ok := c.v.RegexOK(); ok && p == pattern && o == opts {
				return true
			}
		}
		return false
	}, nil
}

// DistinctValues returns the values path reaches in doc that distinct
// counts: an array by its elements, not as itself; a missing value not at all.
func DistinctValues(doc bsoncore.Document, path []string) []bsoncore.Value {
	var out []bsoncore.Value
	for _, cv := range PathValues(doc, path) {
		if cv.v.Type == 0 || cv.v.Type == bsoncore.TypeArray && !cv.arrElem {
			continue
		}
		out = append(out, cv.v)
	}
	return out
}
