package stream

import "go.mongodb.org/mongo-driver/v2/bson"

// EventDecoderAsStream returns a function that decodes events as a
// Stream[Event[D]] does on a client with the registry reg and no BSON
// options, reusing its state between calls as a Stream does. Tests only.
func EventDecoderAsStream[D any](reg *bson.Registry) func(raw bson.Raw) (Event[D], error) {
	d := &envelopeDecoder{decode: func(doc []byte, v any) error { return decodeWith(reg, doc, v) }}
	return func(raw bson.Raw) (Event[D], error) {
		var ev Event[D]
		err := ev.decodeEnvelope(raw, d)
		return ev, err
	}
}
