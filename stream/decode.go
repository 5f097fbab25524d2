package stream

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/go-changestream/changestream/internal/bsonplan"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// How a Stream[T] turns a raw event into a T.
const (
	decodeRegistry = iota // any T: the client's registry, as ChangeStream.Decode does
	decodeEvent           // T is Event[D]: envelope by hand, D by the registry
	decodeRaw             // T is bson.Raw: the event itself
)

func decodeKind[T any]() int {
	var zero T
	switch any(&zero).(type) {
	case *bson.Raw:
		return decodeRaw
	case envelope:
		return decodeEvent
	}
	return decodeRegistry
}

// decode turns the event raw, which the stream owns, into a T. It runs on
// the goroutine that owns the driver's stream.
func (s *Stream[T]) decode(raw bson.Raw, tok Token) (T, error) {
	return decodeAs[T](s.kind, raw, tok, &s.env)
}

// decodeAs is decode with the decoder env of the goroutine it runs on.
func decodeAs[T any](kind int, raw bson.Raw, tok Token, env *envelopeDecoder) (T, error) {
	var v T
	var err error
	switch kind {
	case decodeRaw:
		*any(&v).(*bson.Raw) = raw
		return v, nil
	case decodeEvent:
		err = any(&v).(envelope).decodeEnvelope(raw, env)
	default:
		err = env.decode(raw, &v)
	}
	if err != nil {
		var zero T
		de := newDecodeError(raw, fmt.Sprintf("%T", v), err)
		de.Token = tok
		return zero, de
	}
	return v, nil
}

// decodeDoc decodes doc into v with the client's registry and BSON options.
// It must run on the goroutine that owns the driver's stream.
//
// The driver does not expose the client's registry, and its own Decode
// reads through a streaming reader (a 4 KiB buffer and a copy of every
// string per call). So when the client sets no BSON options, decodeDoc
// reads the registry out of the driver's stream once and decodes from the
// bytes in memory, as bson.Unmarshal does. Otherwise, or if the driver's
// layout ever changes, it lends the driver's own decoder: Current is
// pointed at doc for the call and restored after.
func (s *Stream[T]) decodeDoc(doc []byte, v any) error {
	if !s.codec.ready {
		s.codec = codecOf(s.cs)
	}
	if s.codec.decodePlanned(doc, v) {
		return nil
	}
	if s.codec.reg != nil {
		return decodeWith(s.codec.reg, doc, v)
	}
	saved := s.cs.Current
	s.cs.Current = doc
	err := s.cs.Decode(v)
	s.cs.Current = saved
	return err
}

// decodeWith decodes the document doc into v with reg, reading doc in
// memory.
func decodeWith(reg *bson.Registry, doc []byte, v any) error {
	return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}.UnmarshalWithRegistry(reg, v)
}

// codec is how a stream decodes documents with the client's registry.
type codec struct {
	ready bool
	reg   *bson.Registry // nil: use the driver's ChangeStream.Decode
	// planReg is the client's registry when its BSON options allow
	// compiled decode plans (decode_plan.go); nil: no plans.
	planReg *bson.Registry
	planned planned
}

var (
	registryType = reflect.TypeFor[*bson.Registry]()
	bsonOptsType = reflect.TypeFor[*options.BSONOptions]()
)

// codecOf returns the registry of the driver's stream when its documents can
// be decoded without the driver's help: the client has no BSON options
// (with them, the driver's decoder sets flags only it can set). Decode
// plans need only the registry, and some options rule them out.
func codecOf(cs *mongo.ChangeStream) codec {
	v := reflect.ValueOf(cs).Elem()
	reg, opts := v.FieldByName("registry"), v.FieldByName("bsonOpts")
	if !reg.IsValid() || !opts.IsValid() || reg.Type() != registryType || opts.Type() != bsonOptsType ||
		reg.IsNil() {
		return codec{ready: true}
	}
	r := reflect.NewAt(registryType, unsafe.Pointer(reg.UnsafeAddr())).Elem().Interface().(*bson.Registry)
	o := reflect.NewAt(bsonOptsType, unsafe.Pointer(opts.UnsafeAddr())).Elem().Interface().(*options.BSONOptions)
	c := codec{ready: true}
	if bsonplan.OptionsAllow(o) {
		c.planReg = r
	}
	if o == nil {
		c.reg = r
	}
	return c
}

// slabSize is the size of the buffers events are copied into; events larger
// than a quarter of it get their own.
const slabSize = 32 << 10

// own copies an event out of the driver's buffers into memory the stream
// never reuses, carving small events from a shared slab to save
// allocations.
func (s *Stream[T]) own(b []byte) bson.Raw {
	if len(b) > slabSize/4 {
		return bson.Raw(append([]byte(nil), b...))
	}
	if cap(s.slab)-len(s.slab) < len(b) {
		s.slab = make([]byte, 0, slabSize)
	}
	n := len(s.slab)
	s.slab = append(s.slab, b...)
	return bson.Raw(s.slab[n:len(s.slab):len(s.slab)])
}
