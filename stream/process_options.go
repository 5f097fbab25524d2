package stream

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults of the zero values of ProcessOptions.
const (
	// DefaultWorkers is the number of handlers Process runs at once when
	// ProcessOptions.Workers is zero.
	DefaultWorkers = 16

	// DefaultInFlightPerWorker sets ProcessOptions.MaxInFlight when it is
	// zero: DefaultInFlightPerWorker × Workers.
	DefaultInFlightPerWorker = 4

	// DefaultMaxAttempts is how many times Process calls a handler for one
	// event before giving up on it when ProcessOptions.MaxAttempts is zero.
	DefaultMaxAttempts = 5

	// DefaultRetryDelay is the backoff delay before the second attempt when
	// ProcessOptions.RetryDelay is zero.
	DefaultRetryDelay = 100 * time.Millisecond

	// DefaultRetryMaxDelay caps the backoff delay between attempts when
	// ProcessOptions.RetryMaxDelay is zero.
	DefaultRetryMaxDelay = 5 * time.Second

	// DefaultGrace is how long Process waits for running handlers once it
	// stops when ProcessOptions.Grace is zero.
	DefaultGrace = 10 * time.Second
)

// ProcessOptions holds the settings of Process. A nil *ProcessOptions
// means all defaults; so does the zero value of every field. Process
// returns an error for an invalid value (a negative number, MaxInFlight
// below Workers, RetryDelay above RetryMaxDelay).
type ProcessOptions[T any] struct {
	// Workers is how many handler calls may run at once. The zero value
	// means DefaultWorkers.
	Workers int

	// MaxInFlight bounds the events Process holds: taken from the stream
	// and not yet committed, whether their handler waits for its turn,
	// runs, or completed behind an older event that has not. When it is
	// reached, Process takes no further event until the oldest one
	// completes. It is also the most events a crash can make come again,
	// beyond those committed and not yet saved (see Options.CheckpointEvery).
	// It must be at least Workers; the zero value means
	// DefaultInFlightPerWorker × Workers.
	MaxInFlight int

	// Key returns the ordering key of an event: events with equal keys
	// are handled one after another, in stream order. ok false makes the
	// event a barrier: it runs alone, after every event before it
	// completed and before any event after it starts. The zero value (nil)
	// uses the event's namespace and documentKey, so that the events of
	// one document are ordered and events without a documentKey (drop,
	// rename, dropDatabase, invalidate, DDL) are barriers. Key runs on
	// Process's intake goroutine, one event at a time; a panic in it stops
	// Process with an error. An event that could not be decoded into T is
	// always a barrier.
	Key func(ev T) (key string, ok bool)

	// MaxAttempts is how many times the handler is called for one event
	// before Process gives up on it (see DeadLetter); 1 means no retry.
	// The zero value means DefaultMaxAttempts.
	MaxAttempts int

	// RetryDelay is the backoff delay before the second attempt; each
	// further attempt doubles it, up to RetryMaxDelay, and each delay is
	// jittered to between half and all of its value. The zero value means
	// DefaultRetryDelay.
	RetryDelay time.Duration

	// RetryMaxDelay caps the backoff delay. The zero value means
	// DefaultRetryMaxDelay.
	RetryMaxDelay time.Duration

	// DeadLetter decides what happens to an event Process could not handle
	// (see HandlerError): return nil to count the event as handled and go
	// on (after writing it to a dead-letter queue of your own, say), or an
	// error to stop Process with it. It runs on the worker that handled
	// the event, so later events of the same key wait for it. The zero
	// value (nil) stops Process with the *HandlerError.
	DeadLetter func(ctx context.Context, failed *HandlerError) error

	// Grace is how long Process waits for running handlers once it stops
	// (its context ended, the stream was closed or ended, or an error
	// stops it). When it is over, the handlers' context is cancelled and
	// Process returns without waiting for them; their events are not
	// committed. The zero value means DefaultGrace.
	Grace time.Duration
}

// resolve checks the options and fills in defaults. It never modifies the
// caller's struct.
func (o *ProcessOptions[T]) resolve() (ProcessOptions[T], error) {
	var r ProcessOptions[T]
	if o != nil {
		r = *o
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("changestream: invalid ProcessOptions: "+format, args...))
	}
	if r.Workers < 0 {
		bad("Workers is %d; Process needs at least 1 worker", r.Workers)
	}
	nonNegative := func(name string, v int64) {
		if v < 0 {
			bad("%s is negative (%d)", name, v)
		}
	}
	nonNegative("MaxInFlight", int64(r.MaxInFlight))
	nonNegative("MaxAttempts", int64(r.MaxAttempts))
	nonNegative("RetryDelay", int64(r.RetryDelay))
	nonNegative("RetryMaxDelay", int64(r.RetryMaxDelay))
	nonNegative("Grace", int64(r.Grace))
	if len(errs) > 0 {
		return ProcessOptions[T]{}, errors.Join(errs...)
	}
	if r.Workers == 0 {
		r.Workers = DefaultWorkers
	}
	if r.MaxInFlight == 0 {
		r.MaxInFlight = DefaultInFlightPerWorker * r.Workers
	}
	if r.MaxInFlight < r.Workers {
		bad("MaxInFlight %d is below Workers %d; at most MaxInFlight handlers could run", r.MaxInFlight, r.Workers)
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = DefaultRetryDelay
	}
	if r.RetryMaxDelay == 0 {
		r.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if r.RetryDelay > r.RetryMaxDelay {
		bad("RetryDelay %v is above RetryMaxDelay %v", r.RetryDelay, r.RetryMaxDelay)
	}
	if r.Grace == 0 {
		r.Grace = DefaultGrace
	}
	if err := errors.Join(errs...); err != nil {
		return ProcessOptions[T]{}, err
	}
	return r, nil
}
