package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Batches returns an iterator over the stream's events in batches, for use
// with range, for consumers that handle events in bulk (a bulk write, one
// request to a search index per batch):
//
//	for batch, err := range s.Batches(ctx, 500, 100*time.Millisecond) {
//		if err != nil {
//			return err
//		}
//		// write batch
//	}
//
// A batch holds from 1 to max events, in stream order. Batches waits as
// long as it takes for the first event of a batch; from then on it adds the
// events the stream already received without waiting, and waits for more
// until the batch holds max events or wait has passed since the first
// one. So a stream that is behind yields full batches at once, and a quiet
// one yields each event at most wait after it arrived; with wait 0 a batch
// is what the server already sent. Each batch is a new slice, the loop
// body's to keep.
//
// Commit point: a batch is committed only after its loop body returned and
// the loop asks for the next batch, whatever Options.ManualCommit says.
// When the loop ends during a batch's body (break, return, a panic), a
// Close from another goroutine comes while it runs, or the process dies,
// the whole batch is not committed: after a restart every event of it
// comes again, never part of it. Between batches, while the stream waits
// for the first event of the next one, the server's postBatchResumeToken
// is committed as the stream goes idle. With Options.Store, committed
// positions are saved as for Next (CheckpointEvery counts events).
//
// Errors are yielded with a nil batch. An error ends the batch being
// gathered: the events before it are yielded first as a batch, committed
// once its loop body returned, and then the error. A *DecodeError's event
// counts as delivered and is committed with the next batch if the loop
// goes on; a *CheckpointError is yielded and iteration goes on if the loop
// body goes on. Any other error (the stream ended, ctx ended,
// ErrInvalidated after the batch holding the invalidate event) is yielded
// once and the loop ends. A Close from another goroutine ends the loop
// without an error, and the events gathered for the batch are not
// yielded.
//
// Like All, Batches is a single-use iterator: ranging over the stream a
// second time (over All or Batches) yields ErrSingleUse once. When the loop
// ends, the stream is closed, with ctx's values but without its
// cancellation; an error of that Close is logged and returned by the next
// call to Close. A max below 1 or a negative wait is yielded as an error
// without using the stream.
func (s *Stream[T]) Batches(ctx context.Context, max int, wait time.Duration) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		if err := checkBatchArgs(max, wait); err != nil {
			yield(nil, err)
			return
		}
		select {
		case <-s.used:
		default:
			yield(nil, ErrSingleUse)
			return
		}
		if ctx == nil {
			ctx = context.Background()
		}
		s.manualCommits()
		defer func() {
			if err := s.close(context.WithoutCancel(ctx), false); err != nil {
				s.mu.Lock()
				s.loopErr = err
				s.mu.Unlock()
			}
		}()
		var done Token // the last event handed over, committed once the loop asks for more
		for {
			if !done.IsZero() {
				if !s.commitBatch(yield, done) {
					return
				}
				done = Token{}
			}
			g := s.gather(ctx, max, wait)
			if errors.Is(g.err, ErrClosed) {
				return // the batch gathered is not committed
			}
			if len(g.batch) > 0 {
				if !yield(g.batch, nil) {
					return
				}
				if g.err == nil {
					done = g.last
					continue
				}
				// An error ended the batch: commit the batch before it.
				if !s.commitBatch(yield, g.last) {
					return
				}
			}
			var de *DecodeError
			var ce *CheckpointError
			switch {
			case g.err == nil:
			case errors.As(g.err, &de):
				if !yield(nil, g.err) {
					return
				}
				done = g.failed
			case errors.As(g.err, &ce):
				if !yield(nil, g.err) {
					return
				}
			default:
				yield(nil, g.err)
				return
			}
		}
	}
}

// commitBatch commits the batch whose last event is last, once its loop
// body returned; it reports whether the loop goes on. A Close during the
// body ends the loop without committing.
func (s *Stream[T]) commitBatch(yield func([]T, error) bool, last Token) bool {
	if s.isClosed() {
		return false
	}
	err := s.Commit(last)
	var ce *CheckpointError
	switch {
	case err == nil, errors.Is(err, ErrAlreadyCommitted):
		// Already committed: the caller's own Commit went further.
		return true
	case errors.As(err, &ce):
		return yield(nil, err)
	}
	yield(nil, err)
	return false
}

// checkBatchArgs validates the arguments of Batches.
func checkBatchArgs(max int, wait time.Duration) error {
	var errs []error
	if max < 1 {
		errs = append(errs, fmt.Errorf("changestream: Batches: max is %d; a batch holds at least 1 event", max))
	}
	if wait < 0 {
		errs = append(errs, fmt.Errorf("changestream: Batches: wait is negative (%v)", wait))
	}
	return errors.Join(errs...)
}

// gathered is one batch as gather delivered it.
type gathered[T any] struct {
	batch  []T
	last   Token // the _id of the batch's last event
	err    error // what ended the batch early, after the events in batch
	failed Token // with a *DecodeError in err, the _id of the event that failed
}

// gather delivers the events of one batch: it waits for the first, then
// takes events until it has max or wait has passed since the first. It
// holds sem for the whole batch.
func (s *Stream[T]) gather(ctx context.Context, max int, wait time.Duration) (g gathered[T]) {
	if err := s.acquire(ctx); err != nil {
		g.err = err
		return g
	}
	defer s.release()
	add := func(d delivery[T], ok bool, err error) bool {
		if err != nil {
			g.err = err
			var de *DecodeError
			if errors.As(err, &de) {
				g.failed = d.id
			}
			return false
		}
		if ok {
			if g.batch == nil {
				g.batch = make([]T, 0, min(max, 1024))
			}
			g.batch = append(g.batch, d.val)
			g.last = d.id
		}
		return true
	}
	if !add(s.deliverHeld(ctx, true)) {
		return g
	}
	if len(g.batch) == max {
		return g
	}
	// One deadline for the rest of the batch: events in hand are taken
	// without looking at it; a fetch it interrupts goes on in the
	// background, and its result comes with the next batch.
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for len(g.batch) < max {
		d, ok, err := s.deliverHeld(wctx, true)
		if err != nil && wctx.Err() != nil && ctx.Err() == nil && errors.Is(err, wctx.Err()) {
			return g // wait has passed
		}
		if !add(d, ok, err) {
			return g
		}
	}
	return g
}

// isClosed reports whether Close was called.
func (s *Stream[T]) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
