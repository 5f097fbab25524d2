package stream

import (
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// documentKeyOf is Process's default key: the event's namespace and
// documentKey, as the server sent them. Events without a documentKey
// (drop, rename, dropDatabase, invalidate, the DDL events of
// showExpandedEvents) have no key: ok is false and they are barriers.
//
// The namespace is part of the key because a database or cluster stream
// sees documents of several collections, and equal _id values in two
// collections are two documents. Both fields are found in one pass over
// the event's top-level fields.
func documentKeyOf(raw bson.Raw) (key string, ok bool) {
	if len(raw) < 5 {
		return "", false
	}
	var ns, dk []byte
	seenNS, seenDK := false, false // the first field of each name counts
	rest := []byte(raw[4 : len(raw)-1])
	for len(rest) > 0 && !(seenNS && seenDK) {
		elem, next, ok := bsoncore.ReadElement(rest)
		if !ok {
			break
		}
		rest = next
		name, err := elem.KeyBytesErr()
		if err != nil {
			break
		}
		isDoc := bsoncore.Type(elem[0]) == bsoncore.TypeEmbeddedDocument
		switch {
		case !seenNS && string(name) == "ns":
			seenNS = true
			if isDoc {
				ns = elem[len(name)+2:]
			}
		case !seenDK && string(name) == "documentKey":
			seenDK = true
			if isDoc {
				dk = elem[len(name)+2:]
			}
		}
	}
	if dk == nil {
		return "", false
	}
	// Both are length-prefixed documents: the pair is unambiguous.
	return string(ns) + string(dk), true
}
