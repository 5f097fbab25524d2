package stream

import "go.mongodb.org/mongo-driver/v2/bson"

// EventDecoderAsStream returns a function that decodes events as a
// Stream[Event[D]] does on a client with the registry reg and no BSON
// options (compiled decode plan first, then the registry), reusing its
// state between calls as a Stream does. Tests only.
func EventDecoderAsStream[D any](reg *bson.Registry) func(raw bson.Raw) (Event[D], error) {
	d := &envelopeDecoder{decode: docDecoder(reg)}
	return func(raw bson.Raw) (Event[D], error) {
		var ev Event[D]
		err := ev.decodeEnvelope(raw, d)
		return ev, err
	}
}

// DocDecoderAsStream returns a function that decodes a document into a D
// as a Stream decodes the full document of an Event[D] on a client with the
// registry reg and no BSON options. Tests only.
func DocDecoderAsStream[D any](reg *bson.Registry) func(doc bson.Raw) (D, error) {
	decode := docDecoder(reg)
	return func(doc bson.Raw) (D, error) {
		var v D
		err := decode(doc, &v)
		return v, err
	}
}

func docDecoder(reg *bson.Registry) func(doc []byte, v any) error {
	c := &codec{ready: true, reg: reg, planReg: reg}
	return func(doc []byte, v any) error {
		if c.decodePlanned(doc, v) {
			return nil
		}
		return decodeWith(reg, doc, v)
	}
}
