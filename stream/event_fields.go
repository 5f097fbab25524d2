package stream

import "go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

// eventFields is where the top-level fields that the stream reads of every
// event lie in it, found in one pass over its elements instead of one
// lookup each (the absent splitEvent alone would make a lookup read every
// element). Each is the first field of its name, as bsoncore's Lookup finds
// it; as for Lookup, a field after a malformed element is not found.
type eventFields struct {
	id, operationType, clusterTime, wallTime, splitEvent fieldAt
	// ns and documentKey make Process's default key (documentKeyParts).
	ns, documentKey fieldAt
}

// fieldAt is where one field's value lies in its document: doc[off:end],
// of BSON type t; t is 0 when the field is absent.
type fieldAt struct {
	t        bsoncore.Type
	seen     bool // a field of the name came (t is 0 when it was malformed)
	off, end int32
}

// in returns the field's value in doc, the document the field was found
// in or a copy of it; the zero Value when the field is absent.
func (f fieldAt) in(doc []byte) bsoncore.Value {
	if f.t == 0 {
		return bsoncore.Value{}
	}
	return bsoncore.Value{Type: f.t, Data: doc[f.off:f.end]}
}

// scanEventFields finds the fields of eventFields in doc, reading its
// elements as bsoncore.Document.LookupErr does (within the length the
// document declares).
func scanEventFields(doc []byte) (f eventFields) {
	length, rest, ok := bsoncore.ReadLength(doc)
	if !ok {
		return f
	}
	length -= 4
	pos := 4 // where rest starts in doc
	for length > 1 {
		elem, next, ok := bsoncore.ReadElement(rest)
		if !ok {
			return f
		}
		length -= int32(len(elem))
		name, err := elem.KeyBytesErr()
		if err != nil {
			return f
		}
		at := fieldAt{t: bsoncore.Type(elem[0]), off: int32(pos + len(name) + 2), end: int32(pos + len(elem))}
		var slot *fieldAt
		switch string(name) {
		case "_id":
			slot = &f.id
		case "operationType":
			slot = &f.operationType
		case "clusterTime":
			slot = &f.clusterTime
		case "wallTime":
			slot = &f.wallTime
		case "splitEvent":
			slot = &f.splitEvent
		case "ns":
			slot = &f.ns
		case "documentKey":
			slot = &f.documentKey
		}
		if slot != nil && !slot.seen {
			// As Lookup's ValueErr, which reads the value again: a value
			// that ReadElement sized but that is not one is not found (nor
			// is a later field of the name).
			if _, _, ok := bsoncore.ReadValue(doc[at.off:at.end], at.t); ok {
				*slot = at
			}
			slot.seen = true
		}
		pos += len(elem)
		rest = next
	}
	return f
}
