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
// Each pair is an event and nil, or an error. A *DecodeError is yielded with
// the zero T and iteration goes on if the loop body goes on. Any other error
// (the stream ended, ctx ended, ErrInvalidated after the invalidate event)
// is yielded once and the loop ends. When the loop ends, for whatever reason
// (break, return, the end of the stream), the stream is closed. A Close from
// another goroutine ends the loop without an error.
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
		defer s.Close(context.WithoutCancel(ctx))
		for {
			v, err := s.Next(ctx)
			if err == nil {
				if !yield(v, nil) {
					return
				}
				continue
			}
			if errors.Is(err, ErrClosed) {
				return
			}
			var de *DecodeError
			if errors.As(err, &de) {
				if !yield(zero, err) {
					return
				}
				continue
			}
			yield(zero, err)
			return
		}
	}
}
