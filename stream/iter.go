package stream

import (
	"context"
	"errors"
	"iter"
)

// All returns an iterator over the stream's events, for use with range:
//
//	for ev, err := range s.All(ctx) {
//		if err != nil {
//			return err
//		}
//		// use ev
//	}
//
// It is a single-use iterator: a stream cannot be rewound, and ranging over
// All a second time (on any call) yields ErrSingleUse once.
//
// Each pair is an event and nil, or an error. A *DecodeError or a
// *CheckpointError is yielded with the zero T and iteration goes on if the
// loop body goes on. Any other error
// (the stream ended, ctx ended, ErrInvalidated after the invalidate event)
// is yielded once and the loop ends. When the loop ends, for whatever reason
// (break, return, the end of the stream), the stream is closed. A Close from
// another goroutine ends the loop without an error.
//
// With Options.Store, an event is committed when its loop body completes
// and the loop asks for the next one; when the loop ends early (break,
// return, a panic), its last event is not committed, so it comes again
// after a restart: at least once. The loop closes the stream with ctx's
// values but without its cancellation; an error of that Close (a failed
// final checkpoint save) is logged and returned by the next call to Close.
func (s *Stream[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		select {
		case <-s.used:
		default:
			yield(zero, ErrSingleUse)
			return
		}
		if ctx == nil {
			ctx = context.Background()
		}
		early := true // until the stream itself ends the loop
		defer func() {
			if err := s.close(context.WithoutCancel(ctx), !early); err != nil {
				s.mu.Lock()
				s.loopErr = err
				s.mu.Unlock()
			}
		}()
		s.marksBody = true // before the first Next, on this goroutine
		for {
			v, err := s.Next(ctx)
			if s.afterNext != nil {
				s.afterNext() // a test's hook
			}
			if err == nil {
				if !s.yieldBody(yield, v, nil) {
					return
				}
				continue
			}
			if errors.Is(err, ErrClosed) {
				early = false
				return
			}
			var de *DecodeError
			var ce *CheckpointError
			if errors.As(err, &de) {
				if !s.yieldBody(yield, zero, err) {
					return
				}
				continue
			}
			if errors.As(err, &ce) {
				if !yield(zero, err) {
					return
				}
				continue
			}
			early = false
			yield(zero, err)
			return
		}
	}
}

// yieldBody runs the loop body for v (or err, for an event that did not
// decode), and then marks the event as no longer in the body: deliver
// marked it so, so that a Close from another goroutine does not commit it
// meanwhile.
func (s *Stream[T]) yieldBody(yield func(T, error) bool, v T, err error) bool {
	s.inBody.Store(true)
	defer s.inBody.Store(false)
	return yield(v, err)
}
