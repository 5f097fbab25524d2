// Package stream gives MongoDB change streams a typed, Go-shaped API on top
// of the official driver (go.mongodb.org/mongo-driver/v2).
//
// Open a stream with Watch on a *mongo.Client, *mongo.Database or
// *mongo.Collection and range over its events:
//
//	s, err := stream.Watch[stream.Event[Order]](ctx, coll, nil, nil)
//	if err != nil {
//		return err
//	}
//	for ev, err := range s.All(ctx) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.OperationType, ev.FullDocument)
//	}
//
// Event[D] carries every field of a change event, with the changed
// documents decoded into your type D through the client's registry, so
// custom codecs keep working. Use bson.Raw as the type parameter for the
// events exactly as the server sends them, or any type the registry can
// decode an event into. DecodeAs decodes the documents of an
// Event[bson.Raw] into a type chosen per event (per collection, on a
// database or cluster stream) with the stream's registry.
//
// An Event marshals and unmarshals itself to BSON and Extended JSON through
// the same envelope code, so events stored in a collection, forwarded as
// JSON or kept in a dead-letter queue come back with every field;
// RegisterEventCodec makes a registry encode D with its own codecs.
//
// # Pull and iterate
//
// Stream has the pull API of Motor's change stream: Next blocks for the next
// event, TryNext makes at most one round trip, Alive says whether more may
// come, ResumeToken returns the point to resume from, and Close ends the
// stream from any goroutine. All returns a single-use iterator for range;
// leaving the loop closes the stream and kills its server cursor.
//
// A context that ends during Next returns ctx.Err() but does not harm the
// stream: unlike the driver's ChangeStream.Next, whose stream dies when its
// context expires during a getMore, the wait goes on in the background and
// the next call returns its event.
//
// # Options
//
// The driver's change-stream options (fullDocument, resumeAfter, startAfter,
// startAtOperationTime, batchSize, maxAwaitTime, collation, comment,
// showExpandedEvents, ...) are passed as the driver's own
// options.ChangeStream() builder; this package's settings are in Options.
//
// # Failures, new watches and checkpoints
//
// When the driver's stream dies of a failure that a new watch can mend (the
// network or the server down for longer than server selection waits, a
// restart or failover, a lost cursor, a resume of the driver that failed),
// Next watches again from the last event it returned, with the same
// pipeline and driver options, jittered exponential backoff and a log line
// per attempt (Options.RewatchDelay, RewatchMaxDelay, RewatchAttempts,
// RewatchTimeout, Logger): the caller sees neither an error nor a gap. A
// stream opened with startAfter keeps startAfter until its first event.
// The driver's own resumes get the same backoff when they fail again
// without an event, and end the stream with ErrResumeFailing after
// RewatchTimeout. Nothing in this package ever restarts a stream "from
// now".
//
// With Options.Store and Options.Name, the stream keeps a checkpoint in a
// TokenStore (MemoryStore, FileStore, CollectionStore or your own): Watch
// resumes from it, the position after an event is committed once the
// consumer asks for the next one (at least once), saves are throttled and
// flushed by Close, and while idle the server's postBatchResumeToken is
// saved so that a quiet stream never falls out of the oplog. With
// Options.ManualCommit the consumer commits with Stream.Commit instead, and
// Batches commits a batch once its loop body returned. Stats reports
// events, resumes, new watches, the lag against the server's newest
// cluster time (zero once caught up), the events in flight and the last
// checkpoint.
//
// A checkpoint records the Identity of its stream (target and a fingerprint
// of the pipeline): Watch refuses another stream's checkpoint with a
// *CheckpointMismatchError. A FileStore checkpoint has one Stream at a time
// (an OS file lock; ErrStreamInUse). With a CollectionStore and
// Options.LeaseTTL, several instances elect one active consumer through a
// lease in the checkpoint document; the others wait in Watch as standbys
// and take over when it dies or stalls, its checkpoint saves are fenced by
// the lease epoch, and a stream that lost its lease ends with ErrLeaseLost.
// A Group lets every instance consume: it splits the stream into
// partitions by the hash of each event's documentKey ($toHashedIndexKey on
// the server), each with its own checkpoint and lease, and deals them out
// to the instances that run, moving a partition only after its old owner
// closed it or its lease expired, so that the events of one document stay
// in order.
//
// # Starting from existing data
//
// Options.NoCheckpoint says what Watch does when the store holds no
// checkpoint: start from now (StartNow, the default), fail with an error
// matching ErrNoCheckpoint (FailWithoutCheckpoint), or deliver every
// existing document first, as an event with OperationType OpSnapshot, and
// then the change stream from a point fixed before the scan began
// (StartWithSnapshot). Changes made during the scan come afterwards through
// the stream, so a consumer that applies events idempotently (upserts,
// deletes of missing documents as no-ops) converges to the collection's
// state. The checkpoint records the fixed point and the last _id
// committed, so a restart goes on with the scan where it stopped.
// Options.SnapshotOnHistoryLost takes a new snapshot instead of failing
// with ErrHistoryLost; Stats().Snapshot reports the progress.
//
// # Parallel processing
//
// Process runs a handler for several events at once, on ProcessOptions.Workers
// goroutines: events of one key (by default one document: its namespace and
// documentKey) are handled one after another in stream order, events
// without a key (drop, rename, invalidate, DDL) are barriers that run alone,
// and the checkpoint moves to the newest event such that it and every event
// before it were handled. Failed handlers are retried with backoff, panics
// are errors, and ProcessOptions.DeadLetter decides what happens to an event
// that could not be handled.
//
// # Events over 16 MiB
//
// With Options.SplitEvents the $changeStreamSplitLargeEvent stage is
// appended to the pipeline, and the fragments of an event the server had to
// split are joined into the whole event before decoding: T never sees a
// fragment, and tokens and checkpoints move only at whole events. A fragment
// out of order ends the stream with a *SplitError, never a half event.
//
// # Errors
//
// Server errors keep their driver types (errors.As with mongo.ServerError
// works) and the ones that end a stream for good also match a sentinel:
// ErrHistoryLost, ErrInvalidToken, ErrFatal and ErrEventTooLarge. An event
// that cannot be decoded is reported as a *DecodeError and the stream goes
// on; so does a *CheckpointError. After an invalidate event the stream ends
// with ErrInvalidated (or, with Options.ContinueAfterInvalidate, goes on
// after it); after Close, calls return ErrClosed.
package stream
