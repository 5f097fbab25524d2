package stream

import (
	"reflect"

	"github.com/go-changestream/changestream/internal/bsonplan"
)

// planned is the compiled decode plan of the one type a stream decodes
// documents into (T, or D of Event[D]).
type planned struct {
	ptrType reflect.Type   // *type the plan is for; nil until the first call
	plan    *bsonplan.Plan // nil: the type is decoded by the registry
}

// decodePlanned decodes doc into v, a pointer to a zero value, with the
// compiled plan of its type, and reports whether it did. When it did not
// (no plan for the type, or a document the plan leaves to the registry), v
// is still zero and the registry decodes doc, giving the same value or
// the error.
func (c *codec) decodePlanned(doc []byte, v any) bool {
	if c.planReg == nil {
		return false
	}
	if t := reflect.TypeOf(v); t != c.planned.ptrType {
		c.planned = planned{ptrType: t, plan: bsonplan.Compile(c.planReg, t.Elem())}
	}
	return c.planned.plan != nil && c.planned.plan.Decode(doc, v)
}
