package stream

// prefetcher decides when a stream fetches ahead.
type prefetcher struct {
	off   bool // Options.DisablePrefetch
	taken int  // events returned from the current batch
}

// prefetch requests the next batch in the background when the event being
// returned was the last of a batch of several, so the round trip overlaps
// with the caller's work on that event. It runs on the goroutine that owns
// the driver's stream, just before that event is returned; the fetch
// goroutine then owns the stream until its result is taken from pending.
//
// A batch of one event means the stream is keeping up with the writes:
// then the next getMore would only wait on the server, and between the
// caller's calls the stream stays without I/O, as without prefetching.
// A batch of several means events queued up: the stream is behind.
//
// One fetch at most is in flight, with one round trip, so the stream holds
// at most one batch ahead. Its result, an event or the postBatchResumeToken
// of an empty batch, waits in pending: the resume token moves only when the
// next call takes it, never while the caller is still handling the current
// event. pendingBlock is set so that TryNext does not wait for it.
func (s *Stream[T]) prefetch() {
	s.pf.taken++
	if s.cs.RemainingBatchLength() > 0 || s.ahead.queued() {
		return
	}
	behind := s.pf.taken > 1
	s.pf.taken = 0
	if s.pf.off || !behind || s.pending != nil || s.cs.ID() == 0 {
		return
	}
	s.startFetch(false, true)
}
