package stream

import (
	"bytes"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MarshalJSON implements json.Marshaler: it writes the event as canonical
// MongoDB Extended JSON of its BSON document (see MarshalBSON), which keeps
// every BSON type, so that json.Marshal and UnmarshalJSON give back the
// same event. bson.MarshalExtJSON(ev, false, false) writes relaxed
// Extended JSON instead, easier to read: it keeps every field too, but
// numbers inside documents (DocumentKey, FullDocument as bson.Raw, Extra,
// ...) come back as int32 when they fit, whatever their BSON type was.
func (e Event[D]) MarshalJSON() ([]byte, error) {
	b, err := e.MarshalBSON()
	if err != nil {
		return nil, err
	}
	return bson.MarshalExtJSON(bson.Raw(b), true, false)
}

// UnmarshalJSON implements json.Unmarshaler: it reads an event in canonical
// or relaxed Extended JSON, as MarshalJSON and bson.MarshalExtJSON write
// it. A document it cannot decode gives a *DecodeError; JSON that is not
// Extended JSON of a document gives another error.
func (e *Event[D]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil // as encoding/json does for null
	}
	var raw bson.Raw
	if err := bson.UnmarshalExtJSON(b, false, &raw); err != nil {
		return fmt.Errorf("changestream: change event JSON: %w", err)
	}
	if raw == nil {
		return errors.New("changestream: change event JSON is not a document")
	}
	return e.UnmarshalBSON(raw)
}
