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
// collections are two documents.
func documentKeyOf(raw bson.Raw) (key string, ok bool) {
	doc := bsoncore.Document(raw)
	dk, err := doc.LookupErr("documentKey")
	if err != nil || dk.Type != bsoncore.TypeEmbeddedDocument {
		return "", false
	}
	ns, err := doc.LookupErr("ns")
	if err != nil || ns.Type != bsoncore.TypeEmbeddedDocument {
		return string(dk.Data), true
	}
	// Both are length-prefixed documents: the pair is unambiguous.
	return string(ns.Data) + string(dk.Data), true
}
