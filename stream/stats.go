package stream

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Stats are figures about a Stream, from Stream.Stats.
type Stats struct {
	// Events counts the events Next, TryNext, All and Batches delivered
	// without an error, the invalidate event included.
	Events int64

	// Resumes counts the resumes the driver made by itself (a new server
	// cursor after a network error, CursorNotFound or an error labelled
	// ResumableChangeStreamError), as far as the stream can observe them.
	Resumes int64

	// Rewatches counts the new watches this package made: after a failure
	// the driver did not mend, and after an invalidate event with
	// Options.ContinueAfterInvalidate.
	Rewatches int64

	// Role is "active" for a stream holding its lease (Options.LeaseTTL),
	// "lost" once it lost it; empty without a lease. A standby is an
	// instance still waiting in Watch, which logs it.
	Role string

	// LeaseEpoch is the epoch of the stream's lease: how many times the
	// stream name changed hands, this instance's turn included. Zero
	// without a lease.
	LeaseEpoch int64

	// ClusterTime is the cluster time of ResumeToken: of the last event
	// delivered, or of the server's postBatchResumeToken while the stream
	// is idle. It is zero when the token carries none.
	ClusterTime bson.Timestamp

	// NewestClusterTime is the newest cluster time the server reported to
	// the stream: the $clusterTime of its latest reply, the
	// postBatchResumeToken of an empty batch, the clusterTime of the newest
	// event received. It moves only when the stream talks to the server
	// (while a consumer waits in Next or Batches, or a prefetch runs).
	NewestClusterTime bson.Timestamp

	// Lag is how far the delivered position is behind what the server
	// reported: NewestClusterTime minus ClusterTime, to the second, as
	// cluster times have. It is zero when CaughtUp, however old the last
	// write is, and zero when ClusterTime is zero. It is measured on the
	// server's clock, not this machine's.
	Lag time.Duration

	// CaughtUp is true when the server had nothing after the last event
	// delivered: the stream's resume point is the postBatchResumeToken of
	// an empty batch, and no event came since.
	CaughtUp bool

	// CommittedClusterTime is the cluster time of the committed position:
	// where a restart would resume once the commits are saved. It is zero
	// before the first commit (or the checkpoint Watch loaded).
	CommittedClusterTime bson.Timestamp

	// CommittedLag is NewestClusterTime minus CommittedClusterTime, to the
	// second: how far a restart would be behind. It is zero when the
	// committed position is the delivered one and the stream is caught
	// up, and zero when CommittedClusterTime is zero.
	CommittedLag time.Duration

	// InFlight is the number of events delivered and not committed yet:
	// with the default commit on the next call at most one, more with
	// Options.ManualCommit and Batches.
	InFlight int

	// Checkpoint is the last checkpoint saved (or loaded by Watch) with
	// Options.Store; the zero Checkpoint when none. Its UpdatedAt is when
	// it was saved.
	Checkpoint Checkpoint

	// CheckpointErr is the error of the last failed save, or nil when the
	// last save succeeded.
	CheckpointErr error

	// Committed counts the events whose position was committed: the
	// consumer asked for the next event, called Commit or Close after
	// handling them, or Batches or Process committed them (see
	// Options.Store). It counts without a Store too.
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

	// Snapshot is the progress of the snapshot the stream started with
	// (Options.NoCheckpoint); the zero value when it took none.
	Snapshot SnapshotStats
}

// Stats returns the stream's figures. It may be called from any goroutine
// at any time, also after Close.
func (s *Stream[T]) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	ps := s.pos.state()
	st.NewestClusterTime, st.CaughtUp, st.InFlight = ps.newest, ps.caughtUp, ps.inflight
	st.ClusterTime = markTime(ps.delivered)
	st.CommittedClusterTime = markTime(ps.committed)
	if !ps.caughtUp {
		st.Lag = lagBetween(st.ClusterTime, ps.newest)
	}
	if !ps.caughtUp || !ps.committed.tok.Equal(ps.delivered.tok) {
		st.CommittedLag = lagBetween(st.CommittedClusterTime, ps.newest)
	}
	st.Checkpoint, st.CheckpointErr = ps.saved, ps.saveErr
	st.Committed, st.CheckpointSaves, st.CheckpointFailures = ps.committedEvents, ps.saves, ps.saveFailures
	if s.lease != nil && st.Role == "active" && s.lease.check() != nil {
		st.Role = "lost"
	}
	return st
}

// markTime returns the cluster time of a position: its token's, or the
// event's when the token carries none.
func markTime(m mark) bson.Timestamp {
	if ct := tokenTime(m.tok); !ct.IsZero() {
		return ct
	}
	return m.ct
}

// lagBetween returns newest minus ct, to the second; zero when ct is zero
// or not behind.
func lagBetween(ct, newest bson.Timestamp) time.Duration {
	if ct.IsZero() || newest.T <= ct.T {
		return 0
	}
	return time.Duration(newest.T-ct.T) * time.Second
}
