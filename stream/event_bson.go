package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// MarshalBSON implements bson.Marshaler: it writes e as a change event
// document, the mirror of the envelope code a Stream decodes with, so that
// bson.Unmarshal followed by bson.Marshal gives back every field with its
// BSON type and value:
//
//   - Each named field is written when it is set (non-zero; for pointers,
//     slices and bson.Raw, non-nil), in the BSON type the server uses:
//     txnNumber an int64, newSize, fragment and of int32s, wallTime a
//     date. An empty but non-nil slice is an empty array.
//   - Then the fields of Extra, except one whose name a field above
//     already wrote.
//   - The named fields come in a fixed order (_id, operationType,
//     clusterTime, collectionUUID, wallTime, txnNumber, lsid, ns, to,
//     nsType, documentKey, updateDescription, fullDocument,
//     fullDocumentBeforeChange, operationDescription, stateBeforeChange,
//     splitEvent), which is not always the server's: a document compares
//     equal field by field, not byte for byte.
//
// FullDocument and FullDocumentBeforeChange are encoded with the default
// registry, as bson.Marshal(D) would encode them; to encode D with a
// registry of your own, register the event's codec in it with
// RegisterEventCodec.
func (e Event[D]) MarshalBSON() ([]byte, error) {
	return e.appendBSON(make([]byte, 0, e.sizeHint()), func(dst []byte, v any) ([]byte, error) {
		b, err := bson.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(dst, b...), nil
	})
}

// UnmarshalBSON implements bson.Unmarshaler: it decodes a change event as a
// Stream does, with FullDocument and FullDocumentBeforeChange decoded by the
// default registry (see RegisterEventCodec for another). It copies data. A
// document it cannot decode gives a *DecodeError.
func (e *Event[D]) UnmarshalBSON(data []byte) error {
	raw := bson.Raw(bytes.Clone(data))
	err := bsoncore.Document(raw).Validate()
	if err == nil && !isDocument(raw) {
		err = errors.New("event is not one BSON document")
	}
	if err == nil {
		d := envelopeDecoder{decode: func(doc []byte, v any) error { return bson.Unmarshal(doc, v) }}
		err = e.decodeEnvelope(raw, &d)
	}
	if err != nil {
		*e = Event[D]{}
		return newDecodeError(raw, fmt.Sprintf("%T", *e), err)
	}
	return nil
}

// encodeFunc appends the BSON document of v to dst.
type encodeFunc func(dst []byte, v any) ([]byte, error)

// appendBSON appends e as a BSON document to dst, with D encoded by enc.
func (e *Event[D]) appendBSON(dst []byte, enc encodeFunc) ([]byte, error) {
	idx, dst := bsoncore.AppendDocumentStart(dst)
	var err error
	if !e.ID.IsZero() {
		dst = bsoncore.AppendDocumentElement(dst, "_id", e.ID.Raw())
	}
	if e.OperationType != "" {
		dst = bsoncore.AppendStringElement(dst, "operationType", string(e.OperationType))
	}
	if !e.ClusterTime.IsZero() {
		dst = bsoncore.AppendTimestampElement(dst, "clusterTime", e.ClusterTime.T, e.ClusterTime.I)
	}
	if e.CollectionUUID.Data != nil || e.CollectionUUID.Subtype != 0 {
		dst = bsoncore.AppendBinaryElement(dst, "collectionUUID", e.CollectionUUID.Subtype, e.CollectionUUID.Data)
	}
	if !e.WallTime.IsZero() {
		dst = bsoncore.AppendDateTimeElement(dst, "wallTime", e.WallTime.UnixMilli())
	}
	if e.TxnNumber != nil {
		dst = bsoncore.AppendInt64Element(dst, "txnNumber", *e.TxnNumber)
	}
	if dst, err = appendRaw(dst, "lsid", e.LSID); err != nil {
		return nil, err
	}
	if !e.NS.IsZero() {
		dst = appendNamespace(dst, "ns", e.NS)
	}
	if e.To != nil {
		dst = appendNamespace(dst, "to", *e.To)
	}
	if e.NSType != "" {
		dst = bsoncore.AppendStringElement(dst, "nsType", e.NSType)
	}
	if dst, err = appendRaw(dst, "documentKey", e.DocumentKey); err != nil {
		return nil, err
	}
	if e.UpdateDescription != nil {
		dst = bsoncore.AppendHeader(dst, bsoncore.TypeEmbeddedDocument, "updateDescription")
		if dst, err = e.UpdateDescription.appendBSON(dst); err != nil {
			return nil, err
		}
	}
	if dst, err = appendImage(dst, "fullDocument", e.FullDocument, enc); err != nil {
		return nil, err
	}
	if dst, err = appendImage(dst, "fullDocumentBeforeChange", e.FullDocumentBeforeChange, enc); err != nil {
		return nil, err
	}
	if dst, err = appendRaw(dst, "operationDescription", e.OperationDescription); err != nil {
		return nil, err
	}
	if dst, err = appendRaw(dst, "stateBeforeChange", e.StateBeforeChange); err != nil {
		return nil, err
	}
	if e.SplitEvent != nil {
		sidx, d := bsoncore.AppendDocumentElementStart(dst, "splitEvent")
		d = bsoncore.AppendInt32Element(d, "fragment", e.SplitEvent.Fragment)
		d = bsoncore.AppendInt32Element(d, "of", e.SplitEvent.Of)
		dst, _ = bsoncore.AppendDocumentEnd(d, sidx)
	}
	if dst, err = appendExtra(dst, e.Extra, e.written); err != nil {
		return nil, err
	}
	dst, err = bsoncore.AppendDocumentEnd(dst, idx)
	return dst, err
}

// sizeHint returns about how many bytes appendBSON writes, so that its
// buffer is allocated once: exactly for the documents e holds, roughly for
// the rest. A D other than bson.Raw may make the buffer grow once more.
func (e *Event[D]) sizeHint() int {
	n := 160 + len(e.ID.Raw()) + len(e.OperationType) + len(e.NS.DB) + len(e.NS.Coll) + len(e.NSType) +
		len(e.CollectionUUID.Data) + len(e.LSID) + len(e.DocumentKey) + len(e.OperationDescription) +
		len(e.StateBeforeChange) + len(e.Extra)
	if e.To != nil {
		n += 32 + len(e.To.DB) + len(e.To.Coll)
	}
	if u := e.UpdateDescription; u != nil {
		n += 96 + len(u.UpdatedFields) + len(u.DisambiguatedPaths) + len(u.Extra) + 32*len(u.TruncatedArrays)
		for _, f := range u.RemovedFields {
			n += 8 + len(f)
		}
	}
	for _, p := range []*D{e.FullDocument, e.FullDocumentBeforeChange} {
		if raw, ok := any(p).(*bson.Raw); ok && raw != nil {
			n += 32 + len(*raw)
		}
	}
	return n
}

// written reports whether appendBSON wrote the field key from a named
// field.
func (e *Event[D]) written(key string) bool {
	switch key {
	case "_id":
		return !e.ID.IsZero()
	case "operationType":
		return e.OperationType != ""
	case "clusterTime":
		return !e.ClusterTime.IsZero()
	case "collectionUUID":
		return e.CollectionUUID.Data != nil || e.CollectionUUID.Subtype != 0
	case "wallTime":
		return !e.WallTime.IsZero()
	case "txnNumber":
		return e.TxnNumber != nil
	case "lsid":
		return e.LSID != nil
	case "ns":
		return !e.NS.IsZero()
	case "to":
		return e.To != nil
	case "nsType":
		return e.NSType != ""
	case "documentKey":
		return e.DocumentKey != nil
	case "updateDescription":
		return e.UpdateDescription != nil
	case "fullDocument":
		return e.FullDocument != nil
	case "fullDocumentBeforeChange":
		return e.FullDocumentBeforeChange != nil
	case "operationDescription":
		return e.OperationDescription != nil
	case "stateBeforeChange":
		return e.StateBeforeChange != nil
	case "splitEvent":
		return e.SplitEvent != nil
	}
	return false
}

// MarshalBSON implements bson.Marshaler with the rules of Event's
// MarshalBSON: updatedFields, removedFields, truncatedArrays and
// disambiguatedPaths when set (non-nil; an empty slice is an empty array),
// then the fields of Extra.
func (u UpdateDescription) MarshalBSON() ([]byte, error) {
	return u.appendBSON(nil)
}

// UnmarshalBSON implements bson.Unmarshaler as a Stream decodes an
// updateDescription. It copies data.
func (u *UpdateDescription) UnmarshalBSON(data []byte) error {
	raw := bytes.Clone(data)
	if err := bsoncore.Document(raw).Validate(); err != nil || !isDocument(raw) {
		return fmt.Errorf("changestream: updateDescription is not one BSON document (%v)", err)
	}
	p, err := updateDescription([]byte("updateDescription"), bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: raw})
	if err != nil {
		return fmt.Errorf("changestream: %w", err)
	}
	*u = *p
	return nil
}

func (u *UpdateDescription) appendBSON(dst []byte) ([]byte, error) {
	idx, dst := bsoncore.AppendDocumentStart(dst)
	var err error
	if dst, err = appendRaw(dst, "updatedFields", u.UpdatedFields); err != nil {
		return nil, err
	}
	if u.RemovedFields != nil {
		aidx, d := bsoncore.AppendArrayElementStart(dst, "removedFields")
		for i, f := range u.RemovedFields {
			d = bsoncore.AppendStringElement(d, arrayKey(i), f)
		}
		dst, _ = bsoncore.AppendArrayEnd(d, aidx)
	}
	if u.TruncatedArrays != nil {
		aidx, d := bsoncore.AppendArrayElementStart(dst, "truncatedArrays")
		for i, t := range u.TruncatedArrays {
			var tidx int32
			tidx, d = bsoncore.AppendDocumentElementStart(d, arrayKey(i))
			d = bsoncore.AppendStringElement(d, "field", t.Field)
			d = bsoncore.AppendInt32Element(d, "newSize", t.NewSize)
			d, _ = bsoncore.AppendDocumentEnd(d, tidx)
		}
		dst, _ = bsoncore.AppendArrayEnd(d, aidx)
	}
	if dst, err = appendRaw(dst, "disambiguatedPaths", u.DisambiguatedPaths); err != nil {
		return nil, err
	}
	written := func(key string) bool {
		switch key {
		case "updatedFields":
			return u.UpdatedFields != nil
		case "removedFields":
			return u.RemovedFields != nil
		case "truncatedArrays":
			return u.TruncatedArrays != nil
		case "disambiguatedPaths":
			return u.DisambiguatedPaths != nil
		}
		return false
	}
	if dst, err = appendExtra(dst, u.Extra, written); err != nil {
		return nil, fmt.Errorf("updateDescription: %w", err)
	}
	return bsoncore.AppendDocumentEnd(dst, idx)
}

// arrayKey returns the key of the i-th element of a BSON array.
func arrayKey(i int) string {
	if i < len(smallKeys) {
		return smallKeys[i]
	}
	return fmt.Sprint(i)
}

var smallKeys = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

func appendNamespace(dst []byte, key string, ns Namespace) []byte {
	idx, dst := bsoncore.AppendDocumentElementStart(dst, key)
	if ns.DB != "" {
		dst = bsoncore.AppendStringElement(dst, "db", ns.DB)
	}
	if ns.Coll != "" {
		dst = bsoncore.AppendStringElement(dst, "coll", ns.Coll)
	}
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

// appendRaw appends the document doc as the field key, unless doc is nil.
func appendRaw(dst []byte, key string, doc bson.Raw) ([]byte, error) {
	if doc == nil {
		return dst, nil
	}
	if !isDocument(doc) {
		return nil, fmt.Errorf("changestream: field %q is not a BSON document", key)
	}
	return bsoncore.AppendDocumentElement(dst, key, doc), nil
}

// isDocument reports whether b has the length and terminator of one BSON
// document.
func isDocument(b []byte) bool {
	return len(b) >= 5 && int(binary.LittleEndian.Uint32(b)) == len(b) && b[len(b)-1] == 0
}

// appendImage appends fullDocument or fullDocumentBeforeChange, unless p
// is nil.
func appendImage[D any](dst []byte, key string, p *D, enc encodeFunc) ([]byte, error) {
	if p == nil {
		return dst, nil
	}
	dst = bsoncore.AppendHeader(dst, bsoncore.TypeEmbeddedDocument, key)
	if raw, ok := any(p).(*bson.Raw); ok {
		if !isDocument(*raw) {
			return nil, fmt.Errorf("changestream: field %q is not a BSON document", key)
		}
		return append(dst, *raw...), nil
	}
	n := len(dst)
	dst, err := enc(dst, p)
	if err != nil {
		return nil, fmt.Errorf("changestream: field %q: %w", key, err)
	}
	if !isDocument(dst[n:]) {
		return nil, fmt.Errorf("changestream: field %q: %T does not encode as a BSON document", key, *p)
	}
	return dst, nil
}

// appendExtra appends the fields of extra, except those written reports
// as already written.
func appendExtra(dst []byte, extra bson.Raw, written func(string) bool) ([]byte, error) {
	if extra == nil {
		return dst, nil
	}
	if !isDocument(extra) {
		return nil, errors.New("changestream: Extra is not a BSON document")
	}
	rem := extra[4 : len(extra)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return nil, errors.New("changestream: Extra is malformed BSON")
		}
		rem = rest
		if !written(el.Key()) {
			dst = append(dst, el...)
		}
	}
	return dst, nil
}

// RegisterEventCodec registers in reg an encoder and a decoder for
// Event[D] that encode and decode D with reg itself, and with the options
// of the encoder or decoder at work (the client's BSON options, for
// example). Without it, an Event is encoded and decoded through its
// MarshalBSON and UnmarshalBSON methods, which know no registry and use
// the default one for D.
//
// Register it in the registry of the client that stores events (the one
// given to options.Client().SetRegistry) when D has codecs of its own: then
// InsertOne(ctx, ev) and FindOne(...).Decode(&ev) keep them, as a Stream
// does. Register it before the registry is used.
func RegisterEventCodec[D any](reg *bson.Registry) {
	t := reflect.TypeFor[Event[D]]()
	reg.RegisterTypeEncoder(t, bson.ValueEncoderFunc(encodeEventValue[D]))
	reg.RegisterTypeDecoder(t, bson.ValueDecoderFunc(decodeEventValue[D]))
}

var tRaw = reflect.TypeFor[bson.Raw]()

func encodeEventValue[D any](ec bson.EncodeContext, vw bson.ValueWriter, val reflect.Value) error {
	ev, ok := val.Interface().(Event[D])
	if !ok {
		return bson.ValueEncoderError{Name: "EventEncodeValue", Types: []reflect.Type{val.Type()}, Received: val}
	}
	b, err := ev.appendBSON(make([]byte, 0, ev.sizeHint()), func(dst []byte, v any) ([]byte, error) {
		var buf bytes.Buffer
		rv := reflect.ValueOf(v)
		enc, err := ec.LookupEncoder(rv.Type())
		if err != nil {
			return nil, err
		}
		if err := enc.EncodeValue(ec, bson.NewDocumentWriter(&buf), rv); err != nil {
			return nil, err
		}
		return append(dst, buf.Bytes()...), nil
	})
	if err != nil {
		return err
	}
	enc, err := ec.LookupEncoder(tRaw)
	if err != nil {
		return err
	}
	return enc.EncodeValue(ec, vw, reflect.ValueOf(bson.Raw(b)))
}

func decodeEventValue[D any](dc bson.DecodeContext, vr bson.ValueReader, val reflect.Value) error {
	if !val.CanSet() || val.Type() != reflect.TypeFor[Event[D]]() {
		return bson.ValueDecoderError{Name: "EventDecodeValue", Types: []reflect.Type{reflect.TypeFor[Event[D]]()}, Received: val}
	}
	switch vr.Type() {
	case bson.TypeNull:
		val.Set(reflect.Zero(val.Type()))
		return vr.ReadNull()
	case bson.TypeUndefined:
		val.Set(reflect.Zero(val.Type()))
		return vr.ReadUndefined()
	}
	dec, err := dc.LookupDecoder(tRaw)
	if err != nil {
		return err
	}
	var raw bson.Raw
	if err := dec.DecodeValue(dc, vr, reflect.ValueOf(&raw).Elem()); err != nil {
		return err
	}
	var ev Event[D]
	d := envelopeDecoder{decode: func(doc []byte, v any) error {
		rv := reflect.ValueOf(v).Elem()
		dec, err := dc.LookupDecoder(rv.Type())
		if err != nil {
			return err
		}
		return dec.DecodeValue(dc, bson.NewDocumentReader(bytes.NewReader(doc)), rv)
	}}
	if err := ev.decodeEnvelope(raw, &d); err != nil {
		return newDecodeError(raw, fmt.Sprintf("%T", ev), err)
	}
	val.Set(reflect.ValueOf(ev))
	return nil
}
