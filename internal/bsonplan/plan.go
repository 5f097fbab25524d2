// Package bsonplan decodes BSON documents into Go values with a per-type
// decode plan, built once per type from its struct fields and bson tags,
// instead of the driver's reflective codecs.
//
// A plan gives exactly what the driver's registry gives, or nothing:
// Compile returns nil for a type the plan cannot decode exactly as the
// registry does (a custom decoder or registry entry anywhere in the type,
// an interface, a bson.Unmarshaler, a driver type such as bson.D, a tag the
// driver rejects), and Decode reports false for a document it will not
// decode itself (malformed BSON, a duplicated field, a conversion it does
// not make, any value the driver would reject). Either way the caller
// decodes with the registry as before, so every error, and every value a
// plan does not produce, is the driver's own.
package bsonplan

import (
	"reflect"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Plan decodes BSON documents into one Go type as a registry does.
type Plan struct {
	typ  reflect.Type
	root *node
}

type planKey struct {
	reg *bson.Registry
	typ reflect.Type
}

// plans caches Compile's results (nil included) by registry and type.
var plans sync.Map // planKey -> *Plan

// Compile returns the plan that decodes documents into values of type t as
// reg does with no decoder options, or nil when a plan cannot match reg
// for t. Results are cached per registry and type.
func Compile(reg *bson.Registry, t reflect.Type) *Plan {
	if reg == nil || t == nil {
		return nil
	}
	k := planKey{reg, t}
	if p, ok := plans.Load(k); ok {
		return p.(*Plan)
	}
	actual, _ := plans.LoadOrStore(k, compile(reg, t))
	return actual.(*Plan)
}

// compile is Compile without the cache.
func compile(reg *bson.Registry, t reflect.Type) *Plan {
	b := builder{reg: reg, nodes: map[reflect.Type]*node{}}
	if root, ok := b.build(t); ok {
		return &Plan{typ: t, root: root}
	}
	return nil
}

// Type is the type the plan decodes into.
func (p *Plan) Type() reflect.Type { return p.typ }

// Decode decodes the BSON document doc into *v, which must be a non-nil
// pointer to the zero value of the plan's type. It reports whether it did;
// when it did not, *v is zero again and the caller must decode doc with
// the registry, which gives the value or the error.
func (p *Plan) Decode(doc []byte, v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Type().Elem() != p.typ {
		return false
	}
	ptr := rv.UnsafePointer()
	if len(doc) < 5 || int(le32(doc)) != len(doc) || doc[len(doc)-1] != 0 {
		return false
	}
	if p.root.decode(ptr, tDocument, doc) {
		return true
	}
	rv.Elem().SetZero()
	return false
}

// OptionsAllow reports whether a plan decodes as a registry does under the
// client BSON options opts (nil: none). Plans read bson tags only and give
// times in UTC, so UseJSONStructTags and UseLocalTimeZone rule them out.
// The other decode options change only what a plan never decodes itself:
// interfaces (BinaryAsSlice, DefaultDocumentM, DefaultDocumentMap),
// conversions it declines (AllowTruncatingDoubles, ObjectIDAsHexString),
// or values decoded twice into one place (ZeroMaps, ZeroStructs: a plan
// decodes into zero values and declines repeated fields). The rest are
// encoding options.
func OptionsAllow(opts *options.BSONOptions) bool {
	return opts == nil || (!opts.UseJSONStructTags && !opts.UseLocalTimeZone)
}
