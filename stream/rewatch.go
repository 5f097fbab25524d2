package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// How a watch starts: the user's own options, or one resume option.
const (
	fromOriginal    = ""
	fromResumeAfter = "resumeAfter"
	fromStartAfter  = "startAfter"
)

// resumePoint is where a watch starts.
type resumePoint struct {
	how string // fromOriginal, fromResumeAfter or fromStartAfter
	tok Token
}

// List implements options.Lister: it replaces every resume option of the
// user's driver options with this one and changes nothing else.
func (r resumePoint) List() []func(*options.ChangeStreamOptions) error {
	return []func(*options.ChangeStreamOptions) error{func(o *options.ChangeStreamOptions) error {
		o.ResumeAfter, o.StartAfter, o.StartAtOperationTime = nil, nil, nil
		if r.how == fromStartAfter {
			o.StartAfter = r.tok.Raw()
		} else {
			o.ResumeAfter = r.tok.Raw()
		}
		return nil
	}}
}

// driverResumeOptions applies the user's driver options to read back the
// resume options they set.
func driverResumeOptions(opts []options.Lister[options.ChangeStreamOptions]) (startAfter, any bool) {
	var o options.ChangeStreamOptions
	for _, l := range opts {
		if l == nil {
			continue
		}
		for _, set := range l.List() {
			if set != nil {
				_ = set(&o)
			}
		}
	}
	return o.StartAfter != nil, o.StartAfter != nil || o.ResumeAfter != nil || o.StartAtOperationTime != nil
}

// open runs the aggregate of a new driver stream: the same target,
// pipeline and driver options as the first, with only the resume option
// replaced by from.
func (s *Stream[T]) open(ctx context.Context, from resumePoint) (*mongo.ChangeStream, error) {
	opts := s.csOpts
	if from.how != fromOriginal {
		opts = append(slices.Clip(opts), &from) // the driver wants pointers
	}
	return s.target.Watch(ctx, s.pipeline, opts...)
}

// Server error codes after which a new watch from the last token can go on:
// the driver's resumable allowlist, CursorNotFound and CursorKilled.
var transientCodes = map[int32]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	43:    true, // CursorNotFound
	63:    true, // StaleShardVersion
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	133:   true, // FailedToSatisfyReadPreference
	150:   true, // StaleEpoch
	189:   true, // PrimarySteppedDown
	234:   true, // RetryChangeStream
	237:   true, // CursorKilled
	262:   true, // ExceededTimeLimit
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13388: true, // StaleConfig
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
}

// transient reports whether a watch from the last token may mend err: a
// network error, a server selection timeout, a cleared connection pool, or
// a server error of the
// NotPrimary, shutdown, network or cursor classes, or one labelled
// ResumableChangeStreamError. Everything else (the fatal change-stream
// codes, authentication and authorization errors, an invalid pipeline, a
// disconnected client) is not.
func transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, mongo.ErrClientDisconnected), errors.Is(err, mongo.ErrMissingResumeToken),
		errors.Is(err, context.Canceled):
		return false
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("NonResumableChangeStreamError") {
			return false
		}
		for _, c := range []int{codeChangeStreamHistoryLost, codeInvalidResumeToken, codeChangeStreamFatalError, codeBSONObjectTooLarge} {
			if se.HasErrorCode(c) {
				return false
			}
		}
		if se.HasErrorLabel("ResumableChangeStreamError") || se.HasErrorLabel("NetworkError") ||
			mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
			return true
		}
		var ce mongo.CommandError
		if errors.As(err, &ce) {
			// Code 0: not a server's reply but the driver's own error,
			// such as a connection pool cleared after a network error.
			return ce.Code == 0 || transientCodes[ce.Code]
		}
		return false
	}
	// Not a server reply: network errors, server selection, timeouts.
	return true
}

// rewatch replaces the driver's stream, after cause ended it, with a new
// watch from the stream's resume point, retrying with backoff. It runs on
// the goroutine that owns the driver's stream. It returns nil when a new
// stream is open, or the error that ends the stream.
func (s *Stream[T]) rewatch(cause error) error {
	if s.cs != nil {
		ctx, cancel := context.WithTimeout(s.ictx, time.Second)
		_ = s.cs.Close(ctx) // best effort: kills the old cursor if the server still has it
		s.killAbandoned(ctx, s.cursorID.Load())
		cancel()
		s.cs = nil
	}
	from, err := s.resumeFrom()
	if err != nil {
		return fmt.Errorf("%w (the stream failed: %w)", err, cause)
	}
	start := s.rewatchStart()
	for attempt := 1; ; attempt++ {
		delay := s.backoff.delay(attempt)
		s.log.Warn("changestream: watching again", "attempt", attempt, "resume", from.how,
			"token", from.tok.String(), "delay", delay, "err", cause)
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ictx.Done():
				t.Stop()
				return ErrClosed
			}
		}
		cs, err := s.open(s.ictx, from)
		if err == nil {
			s.cs, s.firstBatch = cs, true
			// The new watch starts after the last whole event: a split
			// event in progress comes again from its first fragment, and
			// documents decode with the new stream's registry.
			s.split.reset()
			s.codec = codec{}
			s.afterStart = from.how == fromStartAfter
			s.mu.Lock()
			s.stats.Rewatches++
			s.mu.Unlock()
			s.log.Info("changestream: watching again succeeded", "attempt", attempt, "resume", from.how)
			return nil
		}
		if s.ictx.Err() != nil {
			return ErrClosed
		}
		if !transient(err) {
			s.log.Error("changestream: cannot watch again", "attempt", attempt, "resume", from.how, "err", err)
			return classify(err)
		}
		cause = err
		elapsed := time.Since(start)
		if (s.opts.RewatchAttempts > 0 && attempt >= s.opts.RewatchAttempts) ||
			elapsed+s.backoff.delay(attempt+1) > s.opts.RewatchTimeout {
			s.log.Error("changestream: gave up watching again", "attempts", attempt, "elapsed", elapsed, "err", err)
			return fmt.Errorf("changestream: gave up watching again after %d attempts in %v: %w",
				attempt, elapsed.Round(time.Millisecond), classify(err))
		}
	}
}

// resumeFrom returns where a new watch starts: after the invalidate event
// just delivered (startAfter), or after the last event delivered, with
// startAfter while the current watch was opened with startAfter and has
// returned no event yet (spec prose tests 17 and 18), with resumeAfter
// otherwise.
func (s *Stream[T]) resumeFrom() (resumePoint, error) {
	if tok := s.pos.takeRestart(); !tok.IsZero() {
		return resumePoint{how: fromStartAfter, tok: tok}, nil
	}
	tok := s.pos.resumeToken()
	switch {
	case !tok.IsZero() && s.afterStart:
		return resumePoint{how: fromStartAfter, tok: tok}, nil
	case !tok.IsZero():
		return resumePoint{how: fromResumeAfter, tok: tok}, nil
	case !s.taken && s.userResume:
		// startAtOperationTime and nothing returned yet: the user's own
		// options still point at the right place.
		return resumePoint{how: fromOriginal}, nil
	}
	return resumePoint{}, errors.New("changestream: cannot watch again: the server sent no resume token, and watching from now could lose events")
}

// killAbandoned kills, best effort, a server cursor the driver gave up
// without killing: after a network error it forgets its cursor, which a
// server would otherwise keep until its idle timeout.
func (s *Stream[T]) killAbandoned(ctx context.Context, id int64) {
	if id == 0 || s.kill == nil {
		return
	}
	if _, err := s.kill(ctx, id); err != nil {
		s.log.Debug("changestream: could not kill an abandoned server cursor", "cursor", id, "err", err)
	}
}
