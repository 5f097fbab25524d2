package stream

import "go.mongodb.org/mongo-driver/v2/bson"

// DecodeEvent decodes raw as a Stream[Event[D]] does, with the default
// registry for D. Tests only.
func DecodeEvent[D any](raw bson.Raw) (Event[D], error) {
	var ev Event[D]
	d := envelopeDecoder{decode: func(doc []byte, v any) error { return bson.Unmarshal(doc, v) }}
	err := ev.decodeEnvelope(raw, &d)
	return ev, err
}
