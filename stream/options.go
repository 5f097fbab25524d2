package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of the zero values of Options.
const (
	// DefaultCheckpointEvery is the number of events after which a
	// checkpoint is saved when Options.CheckpointEvery is zero.
	DefaultCheckpointEvery = 100

	// DefaultCheckpointInterval is how long a committed position may wait
	// before it is saved when Options.CheckpointInterval is zero.
	DefaultCheckpointInterval = time.Second

	// DefaultCheckpointFailures is the number of failed saves in a row after
	// which Next reports a *CheckpointError when Options.CheckpointFailures
	// is zero.
	DefaultCheckpointFailures = 3

	// DefaultRewatchDelay is the first backoff delay between two attempts
	// to watch again when Options.RewatchDelay is zero.
	DefaultRewatchDelay = 100 * time.Millisecond

	// DefaultRewatchMaxDelay caps the backoff delay when
	// Options.RewatchMaxDelay is zero.
	DefaultRewatchMaxDelay = 10 * time.Second

	// DefaultRewatchTimeout is how long a stream keeps trying to watch again
	// after a failure when Options.RewatchTimeout is zero.
	DefaultRewatchTimeout = 5 * time.Minute
)

// Options holds this package's own settings for a Stream. A nil *Options
// means all defaults; so does the zero value of every field. Watch returns
// an error for an invalid value (a negative number, a Store without a
// Name, RewatchDelay above RewatchMaxDelay).
//
// The driver's change-stream settings (fullDocument, resumeAfter,
// startAfter, batchSize, maxAwaitTime, collation, comment, ...) are not
// here: pass them to Watch as the driver's own options.ChangeStream()
// builder.
type Options struct {
	// Logger receives the stream's log lines: a warning for each attempt to
	// watch again after a failure and for each checkpoint that could not
	// be saved, an info line when an attempt succeeds or the driver resumed
	// by itself, debug lines when the stream opens, ends and saves a
	// checkpoint. The zero value (nil) discards them.
	Logger *slog.Logger

	// Name names the stream: it is the key of its checkpoint in Store and
	// the "stream" attribute of its log lines. It is required with a Store
	// and must then be a name the store accepts; without a Store it is
	// only used in log lines.
	Name string

	// Store, when set, keeps the stream's checkpoint under Name. Watch then
	// loads it and resumes after it (with resumeAfter, or startAfter when
	// the server refuses resumeAfter because the token is an invalidate
	// event's). A saved checkpoint takes precedence over a resumeAfter,
	// startAfter or startAtOperationTime passed to Watch in the driver's
	// options: those only apply to the first run, when the store has no
	// checkpoint yet (ErrNoCheckpoint). Any other Load error is returned
	// by Watch; it never means "start from now".
	//
	// Commit point, at-least-once: the position after an event is
	// committed only when the consumer asks for the next event (Next,
	// TryNext, the next iteration of an All loop) or calls Close; never
	// before the code handling that event ran. A loop over All that ends
	// early (break, return) does not commit its last event: it comes again
	// after a restart. With ManualCommit the consumer commits with
	// Stream.Commit instead; Batches commits each batch after its loop
	// body. Committed positions are saved every CheckpointEvery
	// events or CheckpointInterval, whichever comes first, and on Close.
	// While the stream is idle, the server's postBatchResumeToken is saved
	// at most every CheckpointInterval, so that the checkpoint of a quiet
	// stream never falls out of the oplog.
	//
	// With a CollectionStore (or any store whose Collection method returns
	// the *mongo.Collection it writes to), a stream that includes that
	// collection would see each save as an event: a database stream on its
	// database, or a deployment stream, gets a first pipeline stage that
	// drops the events of that collection on the server, and Watch refuses
	// a stream on the collection itself.
	//
	// A failed save is logged and retried at the next commit; after
	// CheckpointFailures failures in a row, Next, TryNext and All report a
	// *CheckpointError (the stream goes on, and no event is consumed by
	// that call). Close returns the error of its final save.
	Store TokenStore

	// CheckpointEvery is how many committed events may wait before their
	// position is saved. The zero value means DefaultCheckpointEvery; 1
	// saves at every commit.
	CheckpointEvery int

	// CheckpointInterval is how long a committed position may wait before
	// it is saved. The zero value means DefaultCheckpointInterval.
	CheckpointInterval time.Duration

	// CheckpointFailures is how many failed saves in a row make Next report
	// a *CheckpointError. The zero value means DefaultCheckpointFailures.
	CheckpointFailures int

	// DisableRewatch turns watching again off: a failure the driver does
	// not resume by itself then ends the stream with the driver's error.
	DisableRewatch bool

	// RewatchDelay is the backoff delay before the second attempt to watch
	// again (the first is immediate); each further attempt doubles it, up
	// to RewatchMaxDelay, and each delay is jittered to between half and
	// all of its value. The zero value means DefaultRewatchDelay.
	RewatchDelay time.Duration

	// RewatchMaxDelay caps the backoff delay. The zero value means
	// DefaultRewatchMaxDelay.
	RewatchMaxDelay time.Duration

	// RewatchAttempts limits the attempts to watch again after one failure.
	// The zero value means no limit by attempts (RewatchTimeout still
	// applies).
	RewatchAttempts int

	// RewatchTimeout limits the time spent trying to watch again after one
	// failure; the stream then ends with the last error. It also limits the
	// driver's own resumes in a row that bring no event (a getMore that
	// fails again on every new cursor): from the second of them, the stream
	// waits the same backoff before each call to the driver, and ends with
	// ErrResumeFailing once RewatchTimeout (or RewatchAttempts resumes) is
	// used up. The zero value means DefaultRewatchTimeout.
	RewatchTimeout time.Duration

	// ContinueAfterInvalidate makes the stream go on after an invalidate
	// event (the watched collection was dropped or renamed, or its
	// database dropped): the invalidate event is still delivered, then the
	// stream watches again with startAfter set to its token, instead of
	// ending with ErrInvalidated.
	ContinueAfterInvalidate bool

	// SplitEvents asks the server to split change events larger than
	// 16 MiB into fragments: the $changeStreamSplitLargeEvent stage is
	// appended to the pipeline, unless its last stage already is that
	// stage. Either way the Stream joins the fragments into the whole
	// event before decoding it, so T never sees a fragment, and its
	// ResumeToken moves only at whole events. The zero value (false)
	// leaves the pipeline as it is; without the stage such an event ends
	// the stream with ErrEventTooLarge.
	SplitEvents bool

	// ManualCommit turns the commit on the next call off: Next, TryNext and
	// All no longer commit the event they delivered last when they are
	// called again, and Close commits nothing new (it saves what was
	// committed). The consumer commits with Stream.Commit, through the
	// events it is done with, in any order of work but always forward. The
	// server's postBatchResumeToken of an idle stream is still committed
	// when no event is in flight (every event delivered was committed), and,
	// when events are in flight, with the commit of the last of them.
	// Batches commits its batches itself either way.
	ManualCommit bool

	// DisablePrefetch turns off fetching ahead. By default, when Next or
	// TryNext returns the last event of a batch of several (the stream is
	// behind the writes), the next batch is requested in the background
	// while the caller handles that event: at most one batch ahead, and
	// ResumeToken (and so every checkpoint) still moves only when an event
	// is returned. After a batch of one event nothing is fetched between
	// calls. The same goes for the batches of a snapshot's find
	// (NoCheckpoint).
	DisablePrefetch bool

	// DecodeAhead turns on decoding ahead: when the stream takes the
	// second event of a batch from the driver, it copies the rest of the
	// batch (up to 256 events, already in memory: no I/O) and decodes them
	// on up to GOMAXPROCS-1 other goroutines while the caller handles the
	// events before them. Events are still returned one at a time and in
	// stream order, a *DecodeError in its place; ResumeToken and every
	// checkpoint move only when an event is returned; Close waits for the
	// decoders. It has no effect with GOMAXPROCS 1, for bson.Raw, and when
	// the client sets BSON options (their decoder runs only on the
	// stream's goroutine). With it, the decoders of the client's registry
	// (and UnmarshalBSON methods) run on several goroutines at once.
	//
	// It is off by default because on the 2-core machine it was measured
	// on, it cost more CPU per event than it saved in wall time (see
	// docs/performance.md); it can pay where cores are idle and decoding
	// is most of the work (large documents, a server on another machine).
	DecodeAhead bool

	// AcceptChangedPipeline makes Watch accept a checkpoint saved by a
	// stream on the same target with another pipeline or other
	// change-stream options (see Identity): use it for one run when the
	// pipeline changed on purpose and the stream should go on from the old
	// position. Without it Watch returns a *CheckpointMismatchError. A
	// checkpoint of another target is refused either way.
	AcceptChangedPipeline bool

	// LeaseTTL, above zero, makes the stream one of several instances of a
	// service of which one at a time is the active consumer. It needs a
	// CollectionStore. Watch first waits, as a standby, until this instance
	// holds the lease of Name: a lease field in the stream's checkpoint
	// document ({owner, epoch, beat, renewedAt}), written with the store's
	// (majority) write concern and renewed every LeaseTTL/3 in the
	// background. A standby takes over a lease it saw unrenewed for a whole
	// LeaseTTL (the active instance was killed or stopped), or at once a
	// lease its holder released on Close; ctx bounds the wait. Every
	// checkpoint save of the active stream is an update conditional on its
	// lease epoch, so an instance that lost the lease cannot move the
	// checkpoint. An active stream that lost its lease, or could not renew
	// it for LeaseTTL less a 10% margin (by its own monotonic clock: a
	// stopped process notices when it resumes), ends with an error wrapping
	// ErrLeaseLost before it delivers another event. See "Running several
	// instances" in the guide for what may be delivered twice. Zero means
	// no lease.
	LeaseTTL time.Duration

	// Instance names this instance in the lease document and log lines.
	// The zero value means host:pid:random.
	Instance string

	// groupStart, set by a Group for its partitions' streams, is where a
	// partition without a checkpoint starts: the group's start point.
	groupStart Token

	// NoCheckpoint is what Watch does when Store holds no checkpoint for
	// Name (without a Store: at every Watch). StartNow, the zero value,
	// starts the change stream from now. FailWithoutCheckpoint makes Watch
	// return an error matching ErrNoCheckpoint and deliver nothing; it
	// needs a Store.
	//
	// StartWithSnapshot starts from the existing data. Watch opens the
	// change stream first and takes the postBatchResumeToken of its empty
	// first batch as the fixed point; then Next, TryNext, All, Batches and
	// Process deliver every document of the watched collection(s) (every
	// collection of a database, every database but admin, config and local
	// of a deployment; views and system collections left out) in
	// (database, collection, _id) order, each as an event with
	// OperationType OpSnapshot; then the change stream from the fixed
	// point. The checkpoint records the fixed point and the last _id
	// committed (Checkpoint.Snapshot): a restart goes on with the scan
	// after that _id, then with the change stream. The pipeline passed to
	// Watch is not applied to snapshot events, but when its first stage is
	// a $match whose conditions on "ns.db" or "ns.coll" are a string or an
	// $in of strings, only the collections they allow are scanned.
	//
	// At-least-once overlap: a change committed after the fixed point to
	// a document the scan reads after that change is seen twice: its
	// result in the snapshot event, and the change itself later from the
	// stream. A document inserted after the fixed point may come both as a
	// snapshot event and as an insert; one deleted after the fixed point
	// but before the scan reached it comes only as its delete. Applying
	// every event in order, with inserts and replaces as upserts, deletes
	// of a missing document as no-ops and updates that set fields, leaves
	// the same state as the collection's. Collections created during the
	// scan come through the stream. The scan resumes with {_id: {$gt: last}},
	// so every _id of a collection must be of one BSON type class.
	NoCheckpoint NoCheckpointPolicy

	// SnapshotOnHistoryLost makes Watch take a new snapshot, as with
	// StartWithSnapshot, when the saved checkpoint is no longer in the
	// server's history (the oplog rolled over it): instead of failing with
	// ErrHistoryLost, Watch opens the stream from now and delivers every
	// existing document first. The consumer sees OpSnapshot events again
	// and must treat them as the state to converge to. The zero value
	// (false) returns ErrHistoryLost. It acts at Watch only: a running
	// stream that falls out of the history ends with ErrHistoryLost, so
	// that the consumer learns that changes were lost, and a new Watch with
	// the same Store then takes the snapshot.
	SnapshotOnHistoryLost bool

	// SnapshotBatchSize is the batchSize of the snapshot's find commands.
	// The zero value means DefaultSnapshotBatchSize.
	SnapshotBatchSize int
}

// resolve checks the options and fills in defaults. It never modifies the
// caller's struct.
func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("changestream: invalid Options: "+format, args...))
	}
	if r.Store != nil {
		if r.Name == "" {
			bad("a Store needs a Name")
		} else if err := checkStreamName(r.Name); err != nil {
			bad("%w", err)
		}
	}
	nonNegative := func(name string, v int64) {
		if v < 0 {
			bad("%s is negative (%d)", name, v)
		}
	}
	nonNegative("CheckpointEvery", int64(r.CheckpointEvery))
	nonNegative("CheckpointInterval", int64(r.CheckpointInterval))
	nonNegative("CheckpointFailures", int64(r.CheckpointFailures))
	nonNegative("RewatchDelay", int64(r.RewatchDelay))
	nonNegative("RewatchMaxDelay", int64(r.RewatchMaxDelay))
	nonNegative("RewatchAttempts", int64(r.RewatchAttempts))
	nonNegative("RewatchTimeout", int64(r.RewatchTimeout))
	nonNegative("SnapshotBatchSize", int64(r.SnapshotBatchSize))
	if r.NoCheckpoint < StartNow || r.NoCheckpoint > FailWithoutCheckpoint {
		bad("NoCheckpoint %v is not a policy", r.NoCheckpoint)
	}
	if r.NoCheckpoint == FailWithoutCheckpoint && r.Store == nil {
		bad("NoCheckpoint FailWithoutCheckpoint needs a Store")
	}
	if r.SnapshotBatchSize > math.MaxInt32 {
		bad("SnapshotBatchSize %d is above %d", r.SnapshotBatchSize, math.MaxInt32)
	}
	if r.SnapshotBatchSize == 0 {
		r.SnapshotBatchSize = DefaultSnapshotBatchSize
	}
	nonNegative("LeaseTTL", int64(r.LeaseTTL))
	if r.LeaseTTL > 0 {
		if _, ok := r.Store.(leaser); !ok {
			bad("LeaseTTL needs a CollectionStore as Store, not %T", r.Store)
		} else if r.LeaseTTL < 30*time.Millisecond {
			bad("LeaseTTL %v is below 30ms", r.LeaseTTL)
		}
		if r.Instance == "" {
			r.Instance = newOwnerID()
		}
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if r.CheckpointEvery == 0 {
		r.CheckpointEvery = DefaultCheckpointEvery
	}
	if r.CheckpointFailures == 0 {
		r.CheckpointFailures = DefaultCheckpointFailures
	}
	def(&r.CheckpointInterval, DefaultCheckpointInterval)
	def(&r.RewatchDelay, DefaultRewatchDelay)
	def(&r.RewatchMaxDelay, DefaultRewatchMaxDelay)
	def(&r.RewatchTimeout, DefaultRewatchTimeout)
	if r.RewatchDelay > r.RewatchMaxDelay && len(errs) == 0 {
		bad("RewatchDelay %v is above RewatchMaxDelay %v", r.RewatchDelay, r.RewatchMaxDelay)
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	if r.Name != "" {
		r.Logger = r.Logger.With("stream", r.Name)
	}
	return r, nil
}
