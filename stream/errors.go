package stream

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// ErrClosed is returned by Next and TryNext after Close. It is the Go form
// of the StopAsyncIteration that Motor's change stream raises once closed.
var ErrClosed = errors.New("changestream: stream is closed")

// ErrSingleUse is yielded by the iterator of All when the stream has already
// been iterated: a Stream is a single-use iterator.
var ErrSingleUse = errors.New("changestream: Stream.All was already used; a stream is a single-use iterator")

// ErrInvalidated is returned by Next and TryNext after the stream delivered
// an invalidate event (the watched collection was dropped or renamed, or
// the watched database dropped): the server closed the stream. Watch again
// with options.ChangeStream().SetStartAfter(token) to go on after it, or set
// Options.ContinueAfterInvalidate to have the stream do it.
var ErrInvalidated = errors.New("changestream: stream was invalidated")

// ErrHistoryLost means the stream cannot resume: the point it would resume
// from is no longer in the server's oplog (ChangeStreamHistoryLost, 286, or
// CappedPositionLost, 136, on a cursor that fell behind the oplog).
// Events were lost; starting again "from now" would hide that, so nothing
// in this package does it.
var ErrHistoryLost = errors.New("changestream: resume point is no longer in the oplog (ChangeStreamHistoryLost)")

// ErrInvalidToken means the server rejected the resume token
// (InvalidResumeToken, 260), for example resumeAfter with the token of an
// invalidate event.
var ErrInvalidToken = errors.New("changestream: the server rejected the resume token (InvalidResumeToken)")

// ErrFatal means the server ended the stream with an error no resume can
// mend (ChangeStreamFatalError, 280), typically because a pipeline stage
// removed or changed the event's _id, which holds its resume token. A change
// event without _id is reported with this error too.
var ErrFatal = errors.New("changestream: change stream cannot continue (ChangeStreamFatalError)")

// ErrEventTooLarge means a change event exceeded the 16 MiB BSON limit
// (BSONObjectTooLarge, 10334). End the pipeline with the
// $changeStreamSplitLargeEvent stage to receive such events in fragments.
var ErrEventTooLarge = errors.New("changestream: change event is larger than 16 MiB (BSONObjectTooLarge); use the $changeStreamSplitLargeEvent stage")

// Server error codes this package classifies.
const (
	codeInvalidResumeToken      = 260
	codeChangeStreamFatalError  = 280
	codeChangeStreamHistoryLost = 286
	codeCappedPositionLost      = 136
	codeBSONObjectTooLarge      = 10334
)

// DecodeError reports a change event that could not be decoded into a Go
// type: by a Stream (the event is consumed: the stream stays usable and the
// next call returns the next event), by DecodeAs, or by Event's
// UnmarshalBSON. When the event's envelope could be read (only D failed to
// decode, say), OperationType, NS and DocumentKey say which document the
// event was about, so that a consumer can act on it without D: drop the
// document from a cache, park the event for later. For the rest of the
// envelope, bson.Unmarshal Raw into an Event[bson.Raw].
type DecodeError struct {
	// Raw is the event as the server sent it (for Event's UnmarshalBSON,
	// the document it was given; for DecodeAs, the event encoded again by
	// its MarshalBSON).
	Raw bson.Raw
	// Token is the event's resume token (its _id).
	Token Token
	// Type names the Go type the event was decoded into.
	Type string
	// OperationType is the event's operationType; empty when the event
	// has none that is a string.
	OperationType OperationType
	// NS is the event's namespace; zero when the event has none that is a
	// {db, coll} document of strings.
	NS Namespace
	// DocumentKey is the event's documentKey (the changed document's _id,
	// and shard key); nil when the event has none that is a document. It
	// shares Raw's bytes.
	DocumentKey bson.Raw
	// Err is the cause.
	Err error
}

// Error describes the failure, naming the event's token and, when known,
// its operation type and namespace.
func (e *DecodeError) Error() string {
	what := "change event " + e.Token.String()
	if e.OperationType != "" {
		what = string(e.OperationType) + " event " + e.Token.String()
	}
	if !e.NS.IsZero() {
		what += " on " + e.NS.String()
	}
	return fmt.Sprintf("changestream: cannot decode %s into %s: %v", what, e.Type, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// newDecodeError reports that raw could not be decoded into typ, with what
// can still be read of its envelope: each field that has the documented
// type.
func newDecodeError(raw bson.Raw, typ string, err error) *DecodeError {
	de := &DecodeError{Raw: raw, Type: typ, Err: err}
	if !isDocument(raw) {
		return de
	}
	doc := bsoncore.Document(raw)
	if id, ok := documentOK(doc.Lookup("_id")); ok {
		de.Token = tokenOf(bson.Raw(id))
	}
	if op, ok := stringBytes(doc.Lookup("operationType")); ok {
		de.OperationType = opType(op)
	}
	if ns, err := (&envelopeDecoder{}).namespace([]byte("ns"), doc.Lookup("ns")); err == nil {
		de.NS = ns
	}
	if key, ok := documentOK(doc.Lookup("documentKey")); ok {
		de.DocumentKey = bson.Raw(key)
	}
	return de
}

// errMissingID reports an event without _id. It matches ErrFatal and the
// driver's mongo.ErrMissingResumeToken.
var errMissingID = fmt.Errorf("%w: a change event has no _id, so the stream cannot be resumed after it; a pipeline stage must not remove or change _id: %w",
	ErrFatal, mongo.ErrMissingResumeToken)

// classify maps a driver error to this package's sentinels. The result
// still wraps err, so errors.As with mongo.ServerError or
// mongo.CommandError keeps working.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, mongo.ErrMissingResumeToken) {
		return errMissingID
	}
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return err
	}
	var kind error
	switch {
	case se.HasErrorCode(codeChangeStreamHistoryLost), se.HasErrorCode(codeCappedPositionLost):
		// A cursor whose oplog position rolled away fails with
		// CappedPositionLost; a new watch from its token would fail with
		// ChangeStreamHistoryLost. Either way events are gone.
		kind = ErrHistoryLost
	case se.HasErrorCode(codeInvalidResumeToken):
		kind = ErrInvalidToken
	case se.HasErrorCode(codeChangeStreamFatalError):
		kind = ErrFatal
	case se.HasErrorCode(codeBSONObjectTooLarge):
		kind = ErrEventTooLarge
	default:
		return err
	}
	return &classified{kind: kind, err: err}
}

// classified is a driver error with the sentinel it maps to.
type classified struct {
	kind error
	err  error
}

func (c *classified) Error() string   { return c.kind.Error() + ": " + c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }
