package stream

import (
	"hash/maphash"

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
	ns, dk, ok := documentKeyParts(raw)
	if !ok {
		return "", false
	}
	// Both are length-prefixed documents: the pair is unambiguous.
	return string(ns) + string(dk), true
}

// documentKeyParts is documentKeyOf without building the key: the
// namespace (nil when the event has none) and the documentKey, both slices
// of raw.
func documentKeyParts(raw bson.Raw) (ns, dk []byte, ok bool) {
	if len(raw) < 5 {
		return nil, nil, false
	}
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
		return nil, nil, false
	}
	return ns, dk, true
}

// documentKeyAt is where an event's ns and documentKey fields are, as
// the stream found them (eventFields); ok is false when it did not look
// (a snapshot's event), and Process then reads them itself.
type documentKeyAt struct {
	ok              bool
	ns, documentKey fieldAt
}

// documentKeyIn is documentKeyParts for an event whose fields are at.
func documentKeyIn(raw bson.Raw, at documentKeyAt) (ns, dk []byte, ok bool) {
	if !at.ok {
		return documentKeyParts(raw)
	}
	if at.documentKey.t != bsoncore.TypeEmbeddedDocument {
		return nil, nil, false
	}
	if at.ns.t == bsoncore.TypeEmbeddedDocument {
		ns = raw[at.ns.off:at.ns.end]
	}
	return ns, raw[at.documentKey.off:at.documentKey.end], true
}

// keyHasher turns ordering keys into the uint64 Process orders events by:
// a seeded hash (hash/maphash, a new seed for each Process) of the key's
// bytes. Two keys with equal hashes are ordered as one key: their events
// run one after another, which keeps every promise of Process (only less
// concurrency), and with a random 64-bit seed it does not happen in
// practice. Hashing the bytes where they lie in the event avoids building
// a string per event. It is used on one goroutine only.
type keyHasher struct {
	h maphash.Hash
}

func newKeyHasher() *keyHasher {
	k := &keyHasher{}
	k.h.SetSeed(maphash.MakeSeed())
	return k
}

// parts hashes a default key, as documentKeyParts returns it.
func (k *keyHasher) parts(ns, dk []byte) uint64 {
	k.h.Reset()
	k.h.Write(ns)
	k.h.Write(dk)
	return k.h.Sum64()
}

// string hashes a key of ProcessOptions.Key.
func (k *keyHasher) string(key string) uint64 {
	k.h.Reset()
	k.h.WriteString(key)
	return k.h.Sum64()
}
