package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Event is a change event as the MongoDB manual describes it, with the
// changed documents decoded into D. Watch[Event[Order]] is the common use.
//
// Every field the server sends has a place: the fields below, which name
// every field the manual's "Change Events" pages document for MongoDB 8.x,
// or Extra for any other (such as fields of future server versions). Fields
// the event does not carry keep their zero value; which fields each
// operation type carries is in those pages.
//
// Inside a Stream, the envelope is decoded without reflection, and
// FullDocument and FullDocumentBeforeChange are decoded with the client's
// registry and BSON options, so custom codecs for D work. The bson.Raw
// fields share one read-only copy of the event: they stay valid after the
// next call, and must not be modified.
//
// An Event marshals and unmarshals itself (bson.Marshaler,
// bson.Unmarshaler, json.Marshaler, json.Unmarshaler) with the same
// envelope code, so an event stored in a collection or a file, or sent on
// as JSON, keeps every field: see MarshalBSON for the rules and
// RegisterEventCodec for the registry that D goes through.
type Event[D any] struct {
	// ID is the event's resume token (_id).
	ID Token `bson:"_id"`
	// OperationType is the kind of change.
	OperationType OperationType `bson:"operationType"`
	// NS is the namespace the event is about. dropDatabase events have no
	// collection; invalidate events have no namespace.
	NS Namespace `bson:"ns,omitempty"`
	// To is the new namespace of a rename event; nil for other events.
	To *Namespace `bson:"to,omitempty"`
	// DocumentKey is the changed document's _id (and shard key, on sharded
	// collections), for insert, update, replace and delete events.
	DocumentKey bson.Raw `bson:"documentKey,omitempty"`
	// FullDocument is the document after the change: always for insert and
	// replace, for update when the stream asks for it (fullDocument
	// updateLookup, whenAvailable or required). Nil when absent or null.
	FullDocument *D `bson:"fullDocument,omitempty"`
	// FullDocumentBeforeChange is the pre-image of an update, replace or
	// delete, when the stream asks for it (fullDocumentBeforeChange
	// whenAvailable or required) and the collection records pre-images.
	FullDocumentBeforeChange *D `bson:"fullDocumentBeforeChange,omitempty"`
	// UpdateDescription says what an update changed; nil for other events.
	UpdateDescription *UpdateDescription `bson:"updateDescription,omitempty"`
	// ClusterTime is the time of the oplog entry of the change.
	ClusterTime bson.Timestamp `bson:"clusterTime,omitempty"`
	// WallTime is the server's wall clock time of the change, in UTC.
	WallTime time.Time `bson:"wallTime,omitempty"`
	// TxnNumber is the transaction number, for changes made in a
	// multi-document transaction; nil otherwise.
	TxnNumber *int64 `bson:"txnNumber,omitempty"`
	// LSID is the logical session id of the transaction, for changes made
	// in a multi-document transaction.
	LSID bson.Raw `bson:"lsid,omitempty"`
	// CollectionUUID is the collection's UUID (binary subtype 4), sent with
	// showExpandedEvents.
	CollectionUUID bson.Binary `bson:"collectionUUID,omitempty"`
	// OperationDescription holds the details of a DDL event (create,
	// createIndexes, dropIndexes, modify, shardCollection, ...), sent with
	// showExpandedEvents.
	OperationDescription bson.Raw `bson:"operationDescription,omitempty"`
	// NSType is the kind of namespace ("collection", "timeseries" or
	// "view") of a create, drop or rename event, sent with
	// showExpandedEvents.
	NSType string `bson:"nsType,omitempty"`
	// StateBeforeChange holds, for a modify event, the collection's
	// options (collectionOptions) or the index's (indexOptions) before
	// the change, sent with showExpandedEvents.
	StateBeforeChange bson.Raw `bson:"stateBeforeChange,omitempty"`
	// SplitEvent is the splitEvent field of a fragment of an event that
	// $changeStreamSplitLargeEvent split. A Stream joins fragments into
	// the whole event before decoding, so it is nil on the events a Stream
	// delivers; it is kept for decoding fragments read some other way.
	SplitEvent *SplitEvent `bson:"splitEvent,omitempty"`
	// Extra holds, as one document, every field of the event that the
	// fields above do not name, and a fullDocument or
	// fullDocumentBeforeChange that is null (the server's way of saying
	// that the image it was asked for is not available; the field above
	// is then nil); nil when there is none.
	Extra bson.Raw `bson:"-"`
}

// OperationType is the kind of change an event reports. The constants are
// the types the MongoDB manual documents; a value the server sends that is
// not among them is kept as it is.
type OperationType string

// The documented operation types.
const (
	OpInsert                   OperationType = "insert"
	OpUpdate                   OperationType = "update"
	OpReplace                  OperationType = "replace"
	OpDelete                   OperationType = "delete"
	OpDrop                     OperationType = "drop"
	OpRename                   OperationType = "rename"
	OpDropDatabase             OperationType = "dropDatabase"
	OpInvalidate               OperationType = "invalidate"
	OpCreate                   OperationType = "create"                   // showExpandedEvents
	OpCreateIndexes            OperationType = "createIndexes"            // showExpandedEvents
	OpDropIndexes              OperationType = "dropIndexes"              // showExpandedEvents
	OpModify                   OperationType = "modify"                   // showExpandedEvents
	OpShardCollection          OperationType = "shardCollection"          // showExpandedEvents
	OpRefineCollectionShardKey OperationType = "refineCollectionShardKey" // showExpandedEvents
	OpReshardCollection        OperationType = "reshardCollection"        // showExpandedEvents
)

var knownOps = []OperationType{
	OpInsert, OpUpdate, OpReplace, OpDelete, OpDrop, OpRename, OpDropDatabase, OpInvalidate,
	OpCreate, OpCreateIndexes, OpDropIndexes, OpModify, OpShardCollection,
	OpRefineCollectionShardKey, OpReshardCollection, OpSnapshot,
}

// opType returns the OperationType for b without allocating for the
// documented types.
func opType(b []byte) OperationType {
	for _, op := range knownOps {
		if string(b) == string(op) {
			return op
		}
	}
	return OperationType(b)
}

// Namespace is a database and collection name.
type Namespace struct {
	// DB is the database name.
	DB string `bson:"db"`
	// Coll is the collection name; empty for database-wide events such as
	// dropDatabase.
	Coll string `bson:"coll,omitempty"`
}

// IsZero reports whether n names nothing, as in an invalidate event.
func (n Namespace) IsZero() bool { return n.DB == "" && n.Coll == "" }

// String returns "db.coll", or "db" when there is no collection.
func (n Namespace) String() string {
	if n.Coll == "" {
		return n.DB
	}
	return n.DB + "." + n.Coll
}

// UpdateDescription is what an update event changed.
type UpdateDescription struct {
	// UpdatedFields maps each changed field path to its new value.
	UpdatedFields bson.Raw `bson:"updatedFields"`
	// RemovedFields lists the field paths the update removed.
	RemovedFields []string `bson:"removedFields"`
	// TruncatedArrays lists arrays the update shortened.
	TruncatedArrays []TruncatedArray `bson:"truncatedArrays,omitempty"`
	// DisambiguatedPaths, sent with showExpandedEvents, maps ambiguous
	// paths (with numeric keys or dots in names) to their components.
	DisambiguatedPaths bson.Raw `bson:"disambiguatedPaths,omitempty"`
	// Extra holds, as one document, any field of the update description
	// not named above; nil when there is none.
	Extra bson.Raw `bson:"-"`
}

// TruncatedArray is an array an update shortened to NewSize elements.
// An element of truncatedArrays is read as these two fields; any other
// field in it (the manual documents none) is not kept.
type TruncatedArray struct {
	// Field is the dotted path of the array.
	Field string `bson:"field"`
	// NewSize is the array's length after the update.
	NewSize int32 `bson:"newSize"`
}

// SplitEvent says which fragment of a split event this is. splitEvent is
// read as these two fields; any other field in it (the manual documents
// none) is not kept.
type SplitEvent struct {
	// Fragment is this fragment's number, from 1.
	Fragment int32 `bson:"fragment"`
	// Of is how many fragments the event was split into.
	Of int32 `bson:"of"`
}

// envelope is implemented by *Event[D]: Watch uses it to decode events
// without reflection.
type envelope interface {
	decodeEnvelope(raw bson.Raw, d *envelopeDecoder) error
}

// envelopeDecoder holds what decoding an envelope needs between events.
type envelopeDecoder struct {
	// decode decodes a document into v with the client's registry and
	// BSON options.
	decode func(doc []byte, v any) error
	// The last namespace's strings, reused while they repeat.
	db, coll string
}

func (e *Event[D]) decodeEnvelope(raw bson.Raw, d *envelopeDecoder) error {
	*e = Event[D]{}
	if len(raw) < 5 {
		return errors.New("event is not a BSON document")
	}
	var extra rawBuilder
	// A null image goes to Extra after the other fields, unless a later
	// field of the same name is a document.
	var nullAfter, nullBefore bsoncore.Element
	rem := raw[4 : len(raw)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return errors.New("event is malformed BSON")
		}
		rem = rest
		v := el.Value()
		key := el.KeyBytes()
		var err error
		switch string(key) {
		case "_id":
			doc, ok := documentOK(v)
			if !ok {
				return typeError(key, v, bsoncore.TypeEmbeddedDocument)
			}
			e.ID = tokenOf(bson.Raw(doc))
		case "operationType":
			b, ok := stringBytes(v)
			if !ok {
				return typeError(key, v, bsoncore.TypeString)
			}
			e.OperationType = opType(b)
		case "ns":
			e.NS, err = d.namespace(key, v)
		case "to":
			var ns Namespace
			ns, err = d.namespace(key, v)
			e.To = &ns
		case "documentKey":
			e.DocumentKey, err = rawDoc(key, v)
		case "fullDocument":
			e.FullDocument, err = image[D](key, v, d)
			nullAfter = nullImage(el, e.FullDocument)
		case "fullDocumentBeforeChange":
			e.FullDocumentBeforeChange, err = image[D](key, v, d)
			nullBefore = nullImage(el, e.FullDocumentBeforeChange)
		case "updateDescription":
			e.UpdateDescription, err = updateDescription(key, v)
		case "clusterTime":
			t, i, ok := v.TimestampOK()
			if !ok {
				return typeError(key, v, bsoncore.TypeTimestamp)
			}
			e.ClusterTime = bson.Timestamp{T: t, I: i}
		case "wallTime":
			ms, ok := v.DateTimeOK()
			if !ok {
				return typeError(key, v, bsoncore.TypeDateTime)
			}
			e.WallTime = time.UnixMilli(ms).UTC()
		case "txnNumber":
			n, ok := v.AsInt64OK()
			if !ok {
				return typeError(key, v, bsoncore.TypeInt64)
			}
			e.TxnNumber = &n
		case "lsid":
			e.LSID, err = rawDoc(key, v)
		case "collectionUUID":
			sub, data, ok := v.BinaryOK()
			if !ok {
				return typeError(key, v, bsoncore.TypeBinary)
			}
			e.CollectionUUID = bson.Binary{Subtype: sub, Data: data}
		case "operationDescription":
			e.OperationDescription, err = rawDoc(key, v)
		case "stateBeforeChange":
			e.StateBeforeChange, err = rawDoc(key, v)
		case "nsType":
			b, ok := stringBytes(v)
			if !ok {
				return typeError(key, v, bsoncore.TypeString)
			}
			e.NSType = string(b)
		case "splitEvent":
			e.SplitEvent, err = splitEvent(key, v)
		default:
			extra.add(el)
		}
		if err != nil {
			return err
		}
	}
	if nullAfter != nil {
		extra.add(nullAfter)
	}
	if nullBefore != nil {
		extra.add(nullBefore)
	}
	e.Extra = extra.done()
	return nil
}

// nullImage returns el when it is a null (or undefined) image, which
// image decoded to nil, and nil otherwise.
func nullImage[D any](el bsoncore.Element, p *D) bsoncore.Element {
	if p == nil {
		return el
	}
	return nil
}

// namespace reads {db, coll}, reusing the strings of the last namespace.
func (d *envelopeDecoder) namespace(key []byte, v bsoncore.Value) (Namespace, error) {
	doc, ok := documentOK(v)
	if !ok {
		return Namespace{}, typeError(key, v, bsoncore.TypeEmbeddedDocument)
	}
	var ns Namespace
	rem := doc[4 : len(doc)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return Namespace{}, fmt.Errorf("field %q is malformed BSON", key)
		}
		rem = rest
		f := el.Value()
		b, ok := stringBytes(f)
		if !ok {
			return Namespace{}, fmt.Errorf("field %q.%s is BSON %s, want string", key, el.KeyBytes(), f.Type)
		}
		switch string(el.KeyBytes()) {
		case "db":
			if string(b) != d.db {
				d.db = string(b)
			}
			ns.DB = d.db
		case "coll":
			if string(b) != d.coll {
				d.coll = string(b)
			}
			ns.Coll = d.coll
		default:
			return Namespace{}, fmt.Errorf("field %q has an unknown field %q", key, el.KeyBytes())
		}
	}
	return ns, nil
}

// image decodes fullDocument or fullDocumentBeforeChange: nil when null.
func image[D any](key []byte, v bsoncore.Value, d *envelopeDecoder) (*D, error) {
	switch v.Type {
	case bsoncore.TypeNull, bsoncore.TypeUndefined:
		return nil, nil
	case bsoncore.TypeEmbeddedDocument:
		doc, ok := documentOK(v)
		if !ok {
			return nil, fmt.Errorf("field %q is malformed BSON", key)
		}
		p := new(D)
		if err := d.decode(doc, p); err != nil {
			return nil, fmt.Errorf("field %q: %w", key, err)
		}
		return p, nil
	}
	return nil, typeError(key, v, bsoncore.TypeEmbeddedDocument)
}

func updateDescription(key []byte, v bsoncore.Value) (*UpdateDescription, error) {
	doc, ok := documentOK(v)
	if !ok {
		return nil, typeError(key, v, bsoncore.TypeEmbeddedDocument)
	}
	u := &UpdateDescription{}
	var extra rawBuilder
	rem := doc[4 : len(doc)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return nil, fmt.Errorf("field %q is malformed BSON", key)
		}
		rem = rest
		f := el.Value()
		fk := el.KeyBytes()
		var err error
		switch string(fk) {
		case "updatedFields":
			u.UpdatedFields, err = rawDoc(fk, f)
		case "removedFields":
			u.RemovedFields, err = stringArray(fk, f)
		case "truncatedArrays":
			u.TruncatedArrays, err = truncatedArrays(fk, f)
		case "disambiguatedPaths":
			u.DisambiguatedPaths, err = rawDoc(fk, f)
		default:
			extra.add(el)
		}
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", key, err)
		}
	}
	u.Extra = extra.done()
	return u, nil
}

// eachArrayValue calls f with each value of the array v, the field key.
func eachArrayValue(key []byte, v bsoncore.Value, f func(bsoncore.Value) error) error {
	arr, ok := arrayOK(v)
	if !ok {
		return typeError(key, v, bsoncore.TypeArray)
	}
	rem := arr[4 : len(arr)-1]
	for len(rem) > 0 {
		el, rest, ok := bsoncore.ReadElement(rem)
		if !ok {
			return fmt.Errorf("field %q is malformed BSON", key)
		}
		rem = rest
		if err := f(el.Value()); err != nil {
			return err
		}
	}
	return nil
}

func stringArray(key []byte, v bsoncore.Value) ([]string, error) {
	out := []string{}
	err := eachArrayValue(key, v, func(ev bsoncore.Value) error {
		b, ok := stringBytes(ev)
		if !ok {
			return fmt.Errorf("field %q holds BSON %s, want string", key, ev.Type)
		}
		out = append(out, string(b))
		return nil
	})
	return out, err
}

func truncatedArrays(key []byte, v bsoncore.Value) ([]TruncatedArray, error) {
	out := []TruncatedArray{}
	err := eachArrayValue(key, v, func(ev bsoncore.Value) error {
		doc, ok := documentOK(ev)
		if !ok {
			return fmt.Errorf("field %q holds BSON %s, want document", key, ev.Type)
		}
		field, ok := doc.Lookup("field").StringValueOK()
		if !ok {
			return fmt.Errorf("field %q: an element has no string field", key)
		}
		n, ok := doc.Lookup("newSize").AsInt64OK()
		if !ok {
			return fmt.Errorf("field %q: an element has no numeric newSize", key)
		}
		out = append(out, TruncatedArray{Field: field, NewSize: int32(n)})
		return nil
	})
	return out, err
}

func splitEvent(key []byte, v bsoncore.Value) (*SplitEvent, error) {
	doc, ok := documentOK(v)
	if !ok {
		return nil, typeError(key, v, bsoncore.TypeEmbeddedDocument)
	}
	frag, ok1 := doc.Lookup("fragment").AsInt64OK()
	of, ok2 := doc.Lookup("of").AsInt64OK()
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("field %q needs numeric fragment and of", key)
	}
	return &SplitEvent{Fragment: int32(frag), Of: int32(of)}, nil
}

func rawDoc(key []byte, v bsoncore.Value) (bson.Raw, error) {
	doc, ok := documentOK(v)
	if !ok {
		return nil, typeError(key, v, bsoncore.TypeEmbeddedDocument)
	}
	return bson.Raw(doc), nil
}

// documentOK returns the embedded document v, checking its length and
// terminator, which bsoncore's DocumentOK does not.
func documentOK(v bsoncore.Value) (bsoncore.Document, bool) {
	doc, ok := v.DocumentOK()
	return doc, ok && isDocument(doc)
}

// arrayOK returns the array v, checking its length and terminator.
func arrayOK(v bsoncore.Value) (bsoncore.Array, bool) {
	arr, ok := v.ArrayOK()
	return arr, ok && isDocument(arr)
}

// stringBytes returns the bytes of a BSON string without copying them.
func stringBytes(v bsoncore.Value) ([]byte, bool) {
	if v.Type != bsoncore.TypeString || len(v.Data) < 5 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(v.Data))
	if n < 1 || 4+n > len(v.Data) || v.Data[4+n-1] != 0 {
		return nil, false
	}
	return v.Data[4 : 4+n-1], true
}

func typeError(key []byte, v bsoncore.Value, want bsoncore.Type) error {
	if v.Type == want {
		return fmt.Errorf("field %q is malformed BSON", key)
	}
	return fmt.Errorf("field %q is BSON %s, want %s", key, v.Type, want)
}

// rawBuilder collects elements into a document, allocating only when the
// first element is added.
type rawBuilder struct {
	buf []byte
	idx int32
}

func (b *rawBuilder) add(el bsoncore.Element) {
	if b.buf == nil {
		b.idx, b.buf = bsoncore.AppendDocumentStart(nil)
	}
	b.buf = append(b.buf, el...)
}

func (b *rawBuilder) done() bson.Raw {
	if b.buf == nil {
		return nil
	}
	b.buf, _ = bsoncore.AppendDocumentEnd(b.buf, b.idx)
	return bson.Raw(b.buf)
}

// isInvalidate reports whether raw is an invalidate event.
func isInvalidate(raw bson.Raw) bool {
	return isInvalidateOp(bsoncore.Document(raw).Lookup("operationType"))
}

// isInvalidateOp reports whether operationType, an event's field, names an
// invalidate event.
func isInvalidateOp(operationType bsoncore.Value) bool {
	b, ok := stringBytes(operationType)
	return ok && bytes.Equal(b, []byte(OpInvalidate))
}
