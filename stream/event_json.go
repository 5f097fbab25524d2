package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MarshalJSON implements json.Marshaler: it writes the event as canonical
// MongoDB Extended JSON of its BSON document (see MarshalBSON), which keeps
// every BSON type, so that json.Marshal and UnmarshalJSON give back the
// same event. bson.MarshalExtJSON(ev, false, false) writes relaxed
// Extended JSON instead, easier to read: it keeps every field too, but
// numbers inside documents (DocumentKey, FullDocument as bson.Raw, Extra,
// ...) come back as int32 when they fit, whatever their BSON type was.
// In both, a string that is not valid UTF-8 is written with U+FFFD in
// place of its invalid bytes, as the driver writes it.
func (e Event[D]) MarshalJSON() ([]byte, error) {
	b, err := e.MarshalBSON()
	if err != nil {
		return nil, err
	}
	return bson.MarshalExtJSON(bson.Raw(b), true, false)
}

// UnmarshalJSON implements json.Unmarshaler: it reads an event in canonical
// or relaxed Extended JSON, as MarshalJSON and bson.MarshalExtJSON write
// it. A document it cannot decode gives a *DecodeError; text that is not
// Extended JSON of a document, in UTF-8, gives another error.
func (e *Event[D]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil // as encoding/json does for null
	}
	if !json.Valid(b) || !utf8.Valid(b) {
		// The driver reads invalid UTF-8 as U+FFFD: refuse it rather than
		// change the event.
		return errors.New("changestream: change event JSON is not valid JSON in UTF-8")
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
