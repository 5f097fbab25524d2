package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Write and read concerns. mongotest is a single data-bearing node: a
// write is durable on it as soon as it is applied, so w: 1, w:
// "majority" and j are met at once; w greater than 1 can never be, and a
// real server then applies the write and reports UnsatisfiableWriteConcern
// (100) as a writeConcernError; a w naming a tag mode the replica set
// configuration lacks gets UnknownReplWriteConcern (79).

// writeConcernError returns the writeConcernError a real single-node
// replica set adds to the reply of a command that ran with the request's
// writeConcern, or nil when the write concern is met.
func writeConcernError(r *request) bsoncore.Document {
	wc, ok := r.arg("writeConcern").DocumentOK()
	if !ok {
		return nil
	}
	w := wc.Lookup("w")
	var code int32
	var msg string
	if n, ok := bsonutil.AsInt64(w); ok && n > 1 {
		code, msg = codes.UnsatisfiableWriteConcern, "Not enough data-bearing nodes"
	} else if s, ok := w.StringValueOK(); ok && s != "majority" {
		code, msg = codes.UnknownReplWriteConcern, "No write concern mode named '"+s+"' found in replica set configuration"
	}
	if code == 0 {
		return nil
	}
	wtimeout, _ := bsonutil.AsInt64(wc.Lookup("wtimeout"))
	info := bson.D{{Key: "w", Value: w}, {Key: "wtimeout", Value: int32(wtimeout)}, {Key: "provenance", Value: "clientSupplied"}}
	doc, err := bson.Marshal(bson.D{
		{Key: "code", Value: code},
		{Key: "codeName", Value: codes.Name(code)},
		{Key: "errmsg", Value: msg},
		{Key: "errInfo", Value: bson.D{{Key: "writeConcern", Value: info}}},
	})
	if err != nil {
		return nil
	}
	return doc
}

// checkChangeStreamReadConcern refuses a $changeStream aggregate whose
// read concern level is not majority, as a real server does: a change
// stream only reads majority-committed changes.
func checkChangeStreamReadConcern(r *request) error {
	rc, ok := r.arg("readConcern").DocumentOK()
	if !ok {
		return nil
	}
	level, ok := rc.Lookup("level").StringValueOK()
	if !ok || level == "majority" {
		return nil
	}
	return codes.Errorf(codes.InvalidOptions, "Read concern level %q is not supported for $changeStream: a change stream reads with read concern 'majority'", level)
}
