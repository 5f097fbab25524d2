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

	// Checkpoint is the last checkpoint saved (or loaded by Watch) with
	// Options.Store; the zero Checkpoint when none. Its UpdatedAt is when
	// it was saved.
	Checkpoint Checkpoint

	// CheckpointErr is the error of the last failed save, or nil when the
	// last save succeeded.
	CheckpointErr error

	// Committed counts the events whose position was committed: the
	// consumer asked for the next event or called Close after handling
	// them (see Options.Store). It is zero without Options.Store.
	Committed int64

	// CheckpointSaves counts the checkpoints saved with Options.Store, and
	// CheckpointFailures the saves that failed (each retry that fails
	// counts again).
	CheckpointSaves, CheckpointFailures int64

	// Batches counts the server's batches that brought at least one
	// document: the first batch of each watch and of each resume, and the
	// replies to getMore. LastBatch is the number of documents in the
	// latest of them. A stream that keeps up with the writes sees batches
	// of one; a stream that is behind, full batches.
	Batches   int64
	LastBatch int
}

// Stats returns the stream's figures. It may be called from any goroutine
// at any time, also after Close.
func (s *Stream[T]) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	tok := s.token
	s.mu.Unlock()
	if ct, err := tok.ClusterTime(); err == nil && !ct.IsZero() {
		st.ClusterTime = ct
		st.Lag = max(time.Since(time.Unix(int64(ct.T), 0)), 0)
	}
	if s.ck != nil {
		f := s.ck.state()
		st.Checkpoint, st.CheckpointErr = f.saved, f.lastErr
		st.Committed, st.CheckpointSaves, st.CheckpointFailures = f.committedEvents, f.saves, f.failures
	}
	return st
}
