package stream

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Stats are figures about a Stream, from Stream.Stats.
type Stats struct {
	// Events counts the events Next, TryNext and All returned without an
	// error, the invalidate event included.
	Events int64

	// Resumes counts the resumes the driver made by itself (a new server
	// cursor after a network error, CursorNotFound or an error labelled
	// ResumableChangeStreamError), as far as the stream can observe them.
	Resumes int64

	// Rewatches counts the new watches this package made: after a failure
	// the driver did not mend, and after an invalidate event with
	// Options.ContinueAfterInvalidate.
	Rewatches int64

	// ClusterTime is the cluster time of ResumeToken: of the last event
	// returned, or of the server's postBatchResumeToken while the stream
	// is idle. It is zero when the token carries none.
	ClusterTime bson.Timestamp

	// Lag is how far the stream is behind: the time now minus ClusterTime,
	// to the second, as cluster times have; zero when ClusterTime is zero.
	Lag time.Duration

	// InFlight is the number of events delivered and not committed yet:
	// with the default commit on the next call at most one, more with
	// Options.ManualCommit, Batches and Process.
	InFlight int

	// CaughtUp is true when the server had nothing after the last event
	// delivered: the stream's resume point is the postBatchResumeToken of
	// an empty batch.
	CaughtUp bool

	// Checkpoint is the last checkpoint saved (or loaded by Watch) with
	// Options.Store; the zero Checkpoint when none. Its UpdatedAt is when
	// it was saved.
	Checkpoint Checkpoint

	// CheckpointErr is the error of the last failed save, or nil when the
	// last save succeeded.
	CheckpointErr error
}

// Stats returns the stream's figures. It may be called from any goroutine
// at any time, also after Close.
func (s *Stream[T]) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	ps := s.pos.state()
	if ct := tokenTime(ps.delivered.tok); !ct.IsZero() {
		st.ClusterTime = ct
		st.Lag = max(time.Since(time.Unix(int64(ct.T), 0)), 0)
	}
	st.InFlight, st.CaughtUp = ps.inflight, ps.caughtUp
	st.Checkpoint, st.CheckpointErr = ps.saved, ps.saveErr
	return st
}
