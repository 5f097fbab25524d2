package mongotest

import (
	"bytes"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// matcher is a compiled query filter.
type matcher interface {
	matches(doc bsoncore.Document) bool
}

// compileFilter compiles a query filter document.
func compileFilter(f bsoncore.Document) (matcher, error) {
	elems, err := f.Elements()
	if err != nil {
		return nil, errorf(codeFailedToParse, "filter: %v", err)
	}
	var and andMatcher
	for _, el := range elems {
		k := el.Key()
		if strings.HasPrefix(k, "$") {
			return nil, errorf(codeBadValue, "unknown top level operator: %s", k)
		}
		v := el.Value()
		if d, ok := v.DocumentOK(); ok {
			if n, _ := commandName(d); strings.HasPrefix(n, "$") {
				return nil, errorf(codeBadValue, "unknown operator: %s", n)
			}
		}
		and = append(and, eqMatcher{path: strings.Split(k, "."), v: v})
	}
	return and, nil
}

type andMatcher []matcher

func (a andMatcher) matches(doc bsoncore.Document) bool {
	for _, m := range a {
		if !m.matches(doc) {
			return false
		}
	}
	return true
}

type eqMatcher struct {
	path []string
	v    bsoncore.Value
}

func (m eqMatcher) matches(doc bsoncore.Document) bool {
	got, err := doc.LookupErr(m.path...)
	if err != nil {
		return m.v.Type == bsoncore.TypeNull
	}
	return valuesEqual(got, m.v)
}

// valuesEqual compares two values as a query does: numbers by value.
func valuesEqual(a, b bsoncore.Value) bool {
	if fa, ok := numberOf(a); ok {
		fb, ok := numberOf(b)
		return ok && fa == fb
	}
	return a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}
