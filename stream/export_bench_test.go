package stream

import "go.mongodb.org/mongo-driver/v2/bson"

// DecodeEventAsStream decodes raw as a Stream[Event[D]] does on a client
// with the registry reg and no BSON options. Tests only.
func DecodeEventAsStream[D any](raw bson.Raw, reg *bson.Registry) (Event[D], error) {
	var ev Event[D]
	d := envelopeDecoder{decode: func(doc []byte, v any) error { return decodeWith(reg, doc, v) }}
	err := ev.decodeEnvelope(raw, &d)
	return ev, err
}
