package stream

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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

// DecodeError reports a change event that could not be decoded into the
// stream's type. The event is consumed: the stream stays usable and the next
// call returns the next event.
type DecodeError struct {
	// Raw is the event as the server sent it.
	Raw bson.Raw
	// Token is the event's resume token (its _id).
	Token Token
	// Type names the Go type the event was decoded into.
	Type string
	// Err is the cause.
	Err error
}

// Error describes the failure, naming the event's token.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("changestream: cannot decode change event %s into %s: %v", e.Token, e.Type, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

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
