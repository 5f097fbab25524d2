package stream

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DecodeAs returns ev, an event that s delivered, with its documents
// (FullDocument and FullDocumentBeforeChange) decoded into D with the
// stream's registry and BSON options, those of the client, database or
// collection it watches, as a Stream[Event[D]] would have decoded them:
// custom codecs and options such as UseJSONStructTags apply. Every other
// field is ev's own, shared, not copied.
//
// It lets one stream over a database or a cluster, of Event[bson.Raw],
// decode each event into the type of its namespace:
//
//	switch ev.NS.Coll {
//	case "orders":
//		order, err := stream.DecodeAs[Order](s, ev)
//	case "customers":
//		customer, err := stream.DecodeAs[Customer](s, ev)
//	}
//
// A document that does not decode gives a *DecodeError with the event (Raw,
// re-encoded from ev), its token, operation type, namespace and document
// key. DecodeAs may be called from any goroutine, also while Next runs, and
// after Close. It needs a stream opened on a *mongo.Client, *mongo.Database
// or *mongo.Collection (whose registry it reads); for another Watcher it
// returns an error.
func DecodeAs[D, T any](s *Stream[T], ev Event[bson.Raw]) (Event[D], error) {
	var out Event[D]
	dec, err := documentDecoderOf(s.target)
	if err == nil {
		out, err = retype[D](ev, dec.decode)
	}
	if err != nil {
		raw, merr := ev.MarshalBSON()
		if merr != nil {
			raw = nil
		}
		return Event[D]{}, &DecodeError{
			Raw: raw, Token: ev.ID, Type: fmt.Sprintf("%T", out), Err: err,
			OperationType: ev.OperationType, NS: ev.NS, DocumentKey: ev.DocumentKey,
		}
	}
	return out, nil
}

// retype returns ev with its images decoded into D by decode.
func retype[D any](ev Event[bson.Raw], decode func(doc []byte, v any) error) (Event[D], error) {
	out := Event[D]{
		ID:                   ev.ID,
		OperationType:        ev.OperationType,
		NS:                   ev.NS,
		To:                   ev.To,
		DocumentKey:          ev.DocumentKey,
		UpdateDescription:    ev.UpdateDescription,
		ClusterTime:          ev.ClusterTime,
		WallTime:             ev.WallTime,
		TxnNumber:            ev.TxnNumber,
		LSID:                 ev.LSID,
		CollectionUUID:       ev.CollectionUUID,
		OperationDescription: ev.OperationDescription,
		NSType:               ev.NSType,
		StateBeforeChange:    ev.StateBeforeChange,
		SplitEvent:           ev.SplitEvent,
		Extra:                ev.Extra,
	}
	var err error
	if out.FullDocument, err = retypeImage[D]("fullDocument", ev.FullDocument, decode); err != nil {
		return Event[D]{}, err
	}
	if out.FullDocumentBeforeChange, err = retypeImage[D]("fullDocumentBeforeChange", ev.FullDocumentBeforeChange, decode); err != nil {
		return Event[D]{}, err
	}
	return out, nil
}

func retypeImage[D any](key string, doc *bson.Raw, decode func(doc []byte, v any) error) (*D, error) {
	if doc == nil {
		return nil, nil
	}
	if !isDocument(*doc) {
		return nil, fmt.Errorf("field %q is not a BSON document", key)
	}
	p := new(D)
	if err := decode(*doc, p); err != nil {
		return nil, fmt.Errorf("field %q: %w", key, err)
	}
	return p, nil
}

// documentDecoder decodes documents as the driver's cursors do, with a
// registry and BSON options. It holds no state of a stream, so it is safe
// for concurrent use.
type documentDecoder struct {
	reg  *bson.Registry
	opts *options.BSONOptions // nil: none
}

// documentDecoderOf returns the decoder of the documents of streams opened
// on target. The driver does not export a client's, database's or
// collection's registry; it is read from the unexported fields that the
// target's Watch hands to its change stream (TestDecodeAsUsesTheRegistry
// fails if a driver upgrade moves them).
func documentDecoderOf(target Watcher) (documentDecoder, error) {
	switch target.(type) {
	case *mongo.Client, *mongo.Database, *mongo.Collection:
	default:
		return documentDecoder{}, fmt.Errorf("changestream: DecodeAs needs a stream opened on a *mongo.Client, *mongo.Database or *mongo.Collection, not %T", target)
	}
	v := reflect.ValueOf(target).Elem()
	reg, opts := v.FieldByName("registry"), v.FieldByName("bsonOpts")
	if !reg.IsValid() || !opts.IsValid() || reg.Type() != registryType || opts.Type() != bsonOptsType || reg.IsNil() {
		return documentDecoder{}, errors.New("changestream: DecodeAs cannot find the registry of this driver version")
	}
	return documentDecoder{
		reg:  reflect.NewAt(registryType, unsafe.Pointer(reg.UnsafeAddr())).Elem().Interface().(*bson.Registry),
		opts: reflect.NewAt(bsonOptsType, unsafe.Pointer(opts.UnsafeAddr())).Elem().Interface().(*options.BSONOptions),
	}, nil
}

// decode decodes doc into v, setting the decoder's options as the driver's
// cursors and change streams do for the same BSON options.
func (d documentDecoder) decode(doc []byte, v any) error {
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(doc)))
	if o := d.opts; o != nil {
		if o.AllowTruncatingDoubles {
			dec.AllowTruncatingDoubles()
		}
		if o.BinaryAsSlice {
			dec.BinaryAsSlice()
		}
		if o.DefaultDocumentM {
			dec.DefaultDocumentM()
		}
		if o.DefaultDocumentMap {
			dec.DefaultDocumentMap()
		}
		if o.ObjectIDAsHexString {
			dec.ObjectIDAsHexString()
		}
		if o.UseJSONStructTags {
			dec.UseJSONStructTags()
		}
		if o.UseLocalTimeZone {
			dec.UseLocalTimeZone()
		}
		if o.ZeroMaps {
			dec.ZeroMaps()
		}
		if o.ZeroStructs {
			dec.ZeroStructs()
		}
	}
	dec.SetRegistry(d.reg)
	return dec.Decode(v)
}
