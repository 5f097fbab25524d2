package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Watcher is what a change stream can be opened on: *mongo.Client (every
// database), *mongo.Database and *mongo.Collection all satisfy it.
type Watcher interface {
	Watch(ctx context.Context, pipeline any, opts ...options.Lister[options.ChangeStreamOptions]) (*mongo.ChangeStream, error)
}

// Stream is a typed change stream: each call to Next returns the next
// change event decoded into a T. Create one with Watch and end it with
// Close.
//
// Next, TryNext, All and Batches may be called from one goroutine at a
// time (calls from several goroutines are serialised); Alive, ResumeToken,
// Commit, Stats and Close may be called from any goroutine at any time.
type Stream[T any] struct {
	cs   *mongo.ChangeStream
	kind int
	env  envelopeDecoder
	log  *slog.Logger
	kill func(ctx context.Context, id int64) (bool, error) // kills a server cursor (true: it was there); nil if the target is unknown

	// What a new watch needs: the same target, pipeline and driver options.
	target   Watcher
	pipeline any
	csOpts   []options.Lister[options.ChangeStreamOptions]
	opts     Options
	backoff  backoff
	pos      *position // position.go: the only writer of the stream's position

	// sem is held by the goroutine that may touch cs and the fields below it
	// (a Next, TryNext or Close call, or Batches gathering a batch), except
	// while a fetch runs: then the fetch goroutine owns cs until it sends on
	// pending.
	sem    chan struct{}
	done   chan struct{} // closed by Close
	ictx   context.Context
	cancel context.CancelFunc // cancels ictx, the context of every driver call
	used   chan struct{}      // holds one token until All or Batches is first ranged over

	pending      chan fetched[T] // result of the fetch in flight, nil if none
	pendingBlock bool            // that fetch waits for an event
	fetchers     sync.WaitGroup  // the goroutines running a fetch; Close waits for them
	cursorID     atomic.Int64    // the server cursor of the latest driver call; Close reads it while a fetch runs
	callMu       sync.Mutex      // guards inCall
	inCall       bool            // a fetch is in a call of the driver's stream (beginCall)
	slab         []byte          // see own
	driverTok    tokenMemo       // see driverToken
	afterStart   bool            // cs was opened with startAfter and has returned no event
	firstBatch   bool            // cs is new: its first batch is not counted yet
	taken        bool            // an event was taken from a driver stream
	userResume   bool            // the user's driver options set a resume option Watch used
	split        reassembler     // split.go: fragments of an event not yet whole
	clock        serverClock     // clustertime.go: the cluster time of the latest reply
	codec        codec           // decode.go: how documents are decoded
	pf           prefetcher      // prefetch.go: fetching ahead
	ahead        decodeAhead[T]  // decodeahead.go: decoding ahead of delivery
	snap         *snapshotter    // snapshot.go: the scan before the change stream; nil when none or done
	resumeRun    resumeRun       // resumes.go: the driver's resumes without an event

	// inBody: an All loop body has an event: from its delivery (deliver,
	// under sem) until the body returned (All). close reads it once it
	// holds sem. marksBody, set by All before its first call, makes
	// deliver set it.
	inBody    atomic.Bool
	marksBody bool
	afterNext func() // nil but in a test: runs in All between Next and the loop body

	mu      sync.Mutex
	closed  bool
	term    error // why the stream ended, if it did
	stats   Stats // Events, Resumes, Rewatches, Batches and LastBatch
	manual  bool  // no commit on the next call: Options.ManualCommit, Batches
	loopErr error // the error of the Close made by All or Batches, for the next Close

	unlock func() error // releases the store's hold on the stream name; nil if none
	lease  *lease       // lease.go: the lease of an active consumer; nil without Options.LeaseTTL
}

// tokenMemo is the driver's last resume token and our copy of it, so that
// it is copied once per change. It is a memo of the driver's state, not the
// stream's position; only the goroutine that owns the driver's stream
// touches it.
type tokenMemo struct {
	raw []byte
	tok Token
}

// fetched is the outcome of one fetch from the driver's stream.
type fetched[T any] struct {
	val         T
	got         bool     // an event came: val (or err, a *DecodeError) is it
	raw         bson.Raw // the event, owned by the stream
	id          Token    // the event's _id
	tok         Token    // the resume token after this fetch
	err         error    // the event's *DecodeError, or why the stream ended
	ended       bool     // err ended the stream
	invalidated bool     // the event is an invalidate
	ct          bson.Timestamp
	wall        time.Time     // the event's clusterTime and wallTime
	key         documentKeyAt // where raw's ns and documentKey are
}

// errContinueAfterInvalidate is the cause logged when a stream watches
// again after an invalidate event.
var errContinueAfterInvalidate = errors.New("changestream: the stream was invalidated; going on after the invalidate event (Options.ContinueAfterInvalidate)")

// errServerClosed reports a cursor the server closed without an invalidate.
var errServerClosed = errors.New("changestream: the server closed the change stream cursor")

// Watch opens a change stream on target and returns it as a Stream whose
// events are decoded into T: Event[D] for the typed envelope with your own
// document type D, bson.Raw for the events as the server sends them, or
// any type the client's registry can decode an event into.
//
// pipeline is the aggregation pipeline that follows the $changeStream stage,
// in any form the driver accepts (mongo.Pipeline, []bson.D, ...); nil means
// none. opts holds this package's settings (nil for the defaults); csOpts
// are the driver's own change-stream options, such as
// options.ChangeStream().SetFullDocument(options.UpdateLookup). To watch
// inside a session, pass a context from mongo.NewSessionContext.
//
// Watch runs the aggregate command with ctx; errors from it are returned as
// they are (server errors stay reachable with errors.As) and never retried
// beyond the driver's retryable read.
//
// With Options.Store, Watch first loads the stream's checkpoint and resumes
// after it; see Options.Store for the precedence over the driver's resume
// options. Later failures that a new watch can mend are mended while Next
// runs: see Next.
func Watch[T any](ctx context.Context, target Watcher, pipeline any, opts *Options,
	csOpts ...options.Lister[options.ChangeStreamOptions],
) (*Stream[T], error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if target == nil || isNilPointer(target) {
		return nil, errors.New("changestream: Watch needs a *mongo.Client, *mongo.Database or *mongo.Collection, not nil")
	}
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if pipeline == nil {
		pipeline = mongo.Pipeline{}
	}
	identity, err := identityOf(target, pipeline, csOpts) // before the store's scope stage
	if err != nil {
		return nil, err
	}
	if pipeline, err = scopeStore(target, pipeline, o.Store); err != nil { // store_scope.go
		return nil, err
	}
	if o.SplitEvents {
		var err error
		if pipeline, err = withSplitStage(pipeline); err != nil {
			return nil, err
		}
	}
	s := &Stream[T]{
		kind:     decodeKind[T](),
		log:      o.Logger,
		kill:     killerFor(target),
		target:   target,
		pipeline: pipeline,
		csOpts:   slices.Clone(csOpts),
		opts:     o,
		backoff:  backoff{initial: o.RewatchDelay, max: o.RewatchMaxDelay},
		pf:       prefetcher{off: o.DisablePrefetch},
		ahead:    decodeAhead[T]{off: !o.DecodeAhead},
		sem:      make(chan struct{}, 1),
		done:     make(chan struct{}),
		used:     make(chan struct{}, 1),
	}
	s.pos = newPosition(&o)
	s.pos.identity = identity
	s.manual = o.ManualCommit
	userStartAfter, userResume := driverResumeOptions(csOpts)
	from := resumePoint{how: fromOriginal}
	snapshot := o.NoCheckpoint == StartWithSnapshot // snapshot.go
	var snapFrom *SnapshotCheckpoint
	if (snapshot || o.SnapshotOnHistoryLost) && userResume {
		return nil, errors.New("changestream: a snapshot fixes its own start point: do not pass resumeAfter, startAfter or startAtOperationTime with Options.NoCheckpoint StartWithSnapshot or Options.SnapshotOnHistoryLost")
	}
	if l, ok := o.Store.(storeLocker); ok {
		unlock, err := l.lock(o.Name)
		if err != nil {
			return nil, err
		}
		s.unlock = unlock
		defer func() {
			if s.cs == nil { // Watch failed
				_ = unlock()
			}
		}()
	}
	if o.LeaseTTL > 0 {
		l, err := o.Store.(leaser).acquireLease(ctx, o.Name, o.Instance, o.LeaseTTL, s.log.With("instance", o.Instance))
		if err != nil {
			return nil, err
		}
		s.lease = l
		o.Store = fencedStore{o.Store.(*CollectionStore), l}
		s.opts.Store = o.Store
		s.pos.store = o.Store
		s.stats.Role, s.stats.LeaseEpoch = "active", l.epoch
		defer func() {
			if s.cs == nil { // Watch failed
				_ = l.release(context.WithoutCancel(ctx))
			}
		}()
	}
	if o.Store != nil {
		cp, ok, err := loadCheckpoint(ctx, &o)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := checkIdentity(o.Name, cp.Identity, identity, o.AcceptChangedPipeline); err != nil {
				return nil, err
			}
			from = resumePoint{how: fromResumeAfter, tok: cp.Token}
			s.pos.loaded(cp)
			snapshot, snapFrom = cp.Snapshot != nil, cp.Snapshot
			if userResume {
				s.log.Info("changestream: resuming from the saved checkpoint; the resume option passed to Watch only applies when there is none")
			}
		} else if !o.groupStart.IsZero() {
			from = resumePoint{how: fromResumeAfter, tok: o.groupStart} // group_member.go
		} else if o.NoCheckpoint == FailWithoutCheckpoint {
			return nil, errNoCheckpointPolicy(o.Name)
		}
	}
	cs, err := s.open(ctx, from)
	if err != nil && from.how != fromOriginal && o.SnapshotOnHistoryLost && errors.Is(classify(err), ErrHistoryLost) {
		s.log.Warn("changestream: the checkpoint is no longer in the oplog; taking a new snapshot (Options.SnapshotOnHistoryLost)", "err", err)
		from, snapshot, snapFrom = resumePoint{how: fromOriginal}, true, nil
		cs, err = s.open(ctx, from)
	}
	if err != nil && from.how == fromResumeAfter && isCode(err, codeInvalidResumeToken) {
		// The checkpoint is an invalidate event's token, which only
		// startAfter accepts.
		s.log.Debug("changestream: the server refused resumeAfter with the checkpoint; trying startAfter", "err", err)
		from.how = fromStartAfter
		cs, err = s.open(ctx, from)
	}
	if err != nil {
		return nil, classify(err)
	}
	s.cs, s.firstBatch = cs, true
	s.afterStart = from.how == fromStartAfter || (from.how == fromOriginal && userStartAfter)
	s.userResume = from.how == fromOriginal && userResume
	s.used <- struct{}{}
	s.env.decode = s.decodeDoc
	// The driver's calls never see the caller's contexts: a context that
	// expires during a getMore would kill the driver's stream for good.
	// They use this one, which only Close cancels.
	s.ictx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	tok := s.driverToken()
	s.pos.opened(tok)
	s.log.Debug("changestream: opened", "resume", from.how, "resumeToken", tok.String())
	if snapshot {
		fixed := tok
		if snapFrom != nil {
			fixed = from.tok
		}
		if err := s.startSnapshot(ctx, fixed, snapFrom); err != nil {
			s.cancel()
			cs.Close(context.WithoutCancel(ctx))
			s.cs = nil // Watch failed: the deferred calls above let go of the store
			return nil, err
		}
	}
	return s, nil
}

// isCode reports whether err is a server error with code.
func isCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// killerFor returns a function that kills a server cursor of a stream
// opened on target and reports whether the server had it (cursorsKilled),
// or nil when target is not a driver type.
func killerFor(target Watcher) func(context.Context, int64) (bool, error) {
	var db *mongo.Database
	var coll string
	switch t := target.(type) {
	case *mongo.Collection:
		db, coll = t.Database(), t.Name()
	case *mongo.Database:
		db, coll = t, "$cmd.aggregate"
	case *mongo.Client:
		db, coll = t.Database("admin"), "$cmd.aggregate"
	default:
		return nil
	}
	return func(ctx context.Context, id int64) (bool, error) {
		var reply struct {
			Killed []int64 `bson:"cursorsKilled"`
		}
		err := db.RunCommand(ctx, bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: bson.A{id}}}).Decode(&reply)
		return err == nil && slices.Contains(reply.Killed, id), err
	}
}

// Next blocks until the next event and returns it.
//
// If ctx ends first, Next returns ctx.Err() and the stream stays usable:
// the wait for the server goes on in the background, and the next call to
// Next or TryNext returns what it brings, so no event is lost.
//
// When the driver's stream dies of a failure a new watch can mend (the
// network or the server down for longer than server selection waits, a
// restart or failover, a lost cursor, a resume of the driver that failed),
// Next watches again from the last event it returned, with backoff (see
// Options), and goes on: the caller sees neither an error nor a gap. Errors
// no new watch can mend end the stream: ErrHistoryLost, ErrInvalidToken,
// ErrFatal, ErrEventTooLarge, ErrResumeFailing (the driver's own resumes
// kept failing for RewatchTimeout), and the server's own errors
// (authentication, authorization, an invalid pipeline) as they are.
//
// A *DecodeError means the event could not be decoded into T; the stream
// goes on with the next event. A *CheckpointError means checkpoints could
// not be saved (see Options.Store); the stream goes on. After Close, Next
// returns ErrClosed; after an invalidate event, ErrInvalidated (unless
// Options.ContinueAfterInvalidate); after any other error the stream is
// over and Next returns that error again.
func (s *Stream[T]) Next(ctx context.Context) (T, error) {
	v, _, err := s.next(ctx, true)
	return v, err
}

// TryNext returns the next event if one is available after at most one
// round trip to the server (one getMore; a resume or a new watch after a
// failure adds its own). It returns (zero, false, nil) when no event came;
// call it again later. Errors are as for Next; with a *DecodeError the event
// is consumed and ok is false.
func (s *Stream[T]) TryNext(ctx context.Context) (v T, ok bool, err error) {
	return s.next(ctx, false)
}

func (s *Stream[T]) next(ctx context.Context, block bool) (T, bool, error) {
	d, ok, err := s.deliver(ctx, block)
	return d.val, ok, err
}

// delivery is an event as the stream hands it over, with what a consumer
// inside the package needs besides the value.
type delivery[T any] struct {
	val   T
	raw   bson.Raw // the whole event, owned by the stream (never reused)
	id    Token    // the event's _id
	after Token    // the resume point after it: ResumeToken once it is delivered
	key   documentKeyAt
	// more: the next event is in memory (buffered), so asking for it will
	// not wait for the server.
	more bool
}

// buffered reports whether the next event can be delivered from memory,
// without waiting for a fetch. The caller holds sem.
func (s *Stream[T]) buffered() bool {
	return s.pending == nil && (s.ahead.queued() || (s.cs != nil && s.cs.RemainingBatchLength() > 0))
}

// deliver is next with the event's raw form and tokens: it blocks (block)
// or makes one round trip at most, as Next and TryNext do, and commits on
// the call unless commits are manual. With a *DecodeError, d still holds
// raw, id and after: the event was delivered and is committed like any
// other.
func (s *Stream[T]) deliver(ctx context.Context, block bool) (d delivery[T], ok bool, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := s.acquire(ctx); err != nil {
		return d, false, err
	}
	defer s.release()
	d, ok, err = s.deliverHeld(ctx, block)
	if s.marksBody && (ok || isDecodeError(err)) {
		// All's loop body owns the event from here, before sem is
		// released: a Close that takes sem next sees it and does not
		// commit the event, though the body has not started yet.
		s.inBody.Store(true)
	}
	return d, ok, err
}

// isDecodeError reports whether err is a *DecodeError: the event was
// delivered though it did not decode.
func isDecodeError(err error) bool {
	var de *DecodeError
	return err != nil && errors.As(err, &de)
}

// acquire takes sem, the right to touch the driver's stream.
func (s *Stream[T]) acquire(ctx context.Context) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Stream[T]) release() { <-s.sem }

// manualCommits turns the commit on the next call off for the rest of the
// stream's life, for consumers in the package that commit by themselves
// (Batches).
func (s *Stream[T]) manualCommits() {
	s.mu.Lock()
	s.manual = true
	s.mu.Unlock()
}

// deliverHeld is deliver for a caller that holds sem.
func (s *Stream[T]) deliverHeld(ctx context.Context, block bool) (d delivery[T], ok bool, err error) {
	s.mu.Lock()
	closed, term, manual := s.closed, s.term, s.manual
	s.mu.Unlock()
	if closed {
		return d, false, ErrClosed
	}
	if manual {
		err = s.pos.takeIdleErr()
	} else {
		// The caller asks for the next event: it is done with the last one.
		err = s.pos.commitDelivered(s.ictx, false)
	}
	if err != nil {
		return d, false, err
	}
	if term != nil {
		return d, false, term
	}
	if s.snap != nil {
		if d, ok, handled, err := s.deliverSnapshot(ctx); handled {
			return d, ok, err
		}
	}
	for {
		f, ok, err := s.await(ctx, block)
		if err != nil || !ok {
			return d, false, err
		}
		if f.got && s.lease != nil {
			if s.lease.check() != nil {
				// Not ours to deliver: the stream ends before it.
				return d, false, s.leaseLost()
			}
		}
		switch {
		case f.ended:
		case f.got:
			s.pos.deliver(f.id, mark{tok: f.tok, ct: f.ct, wall: f.wall}, f.invalidated && s.opts.ContinueAfterInvalidate)
		default:
			s.pos.idle(s.ictx, f.tok)
		}
		s.mu.Lock()
		switch {
		case f.ended:
			s.term = f.err
		case f.got && f.invalidated && !s.opts.ContinueAfterInvalidate:
			s.term = ErrInvalidated
		}
		if f.got && f.err == nil {
			s.stats.Events++
		}
		s.mu.Unlock()
		if f.got && !f.ended {
			s.prefetch() // prefetch.go
		}
		switch {
		case f.ended:
			s.log.Debug("changestream: ended", "err", f.err)
			return d, false, f.err
		case !f.got && block:
			continue
		case !f.got:
			return d, false, nil
		}
		d = delivery[T]{val: f.val, raw: f.raw, id: f.id, after: f.tok, key: f.key, more: s.buffered()}
		if f.err != nil {
			return d, false, f.err
		}
		return d, true, nil
	}
}

// Commit commits the stream's position through a delivered event: tok is
// that event's _id (Event.ID, DecodeError.Token) or the ResumeToken read
// right after Next, TryNext or All delivered it; the current ResumeToken
// names the last event delivered. The event and every event
// delivered before it count as done; with Options.Store the position is
// saved every CheckpointEvery events or CheckpointInterval, whichever comes
// first, and on Close. Commit is how a consumer with Options.ManualCommit
// moves its checkpoint; it may be called from any goroutine.
//
// The position only moves forward, and only to an event already
// delivered: a token at or behind the committed position gives an error
// matching ErrAlreadyCommitted, any other token that is not of an event
// delivered and not committed yet one matching ErrNotDelivered; neither
// changes the position. After Close, Commit still commits (work that was
// in flight when Close was called can finish) and saves at once. A failed
// save is reported as by Next: a *CheckpointError after
// Options.CheckpointFailures failures in a row (or, after Close, the
// error of that save); the position is committed all the same and the save
// is retried at the next commit.
func (s *Stream[T]) Commit(tok Token) error {
	return s.pos.commitThrough(context.WithoutCancel(s.ictx), tok)
}

// await returns the next fetch result: one waiting from an earlier call, one
// from the batch in hand, or a new fetch's. ok is false when TryNext finds a
// blocking fetch still waiting.
func (s *Stream[T]) await(ctx context.Context, block bool) (f fetched[T], ok bool, err error) {
	if s.pending == nil {
		if f, ok := s.nextAhead(); ok {
			return f, true, nil // decodeahead.go: no I/O
		}
		if s.cs != nil && s.cs.RemainingBatchLength() > 0 {
			return s.fetch(false), true, nil // no I/O
		}
		if err := ctx.Err(); err != nil {
			return f, false, err
		}
		s.startFetch(block, block)
	}
	if !block && s.pendingBlock {
		select {
		case f = <-s.pending:
			s.pending = nil
			return f, true, nil
		default:
			return f, false, nil
		}
	}
	if err := ctx.Err(); err != nil {
		// A result that is ready is taken before an ended ctx is reported.
		select {
		case f = <-s.pending:
			s.pending = nil
			return f, true, nil
		default:
			return f, false, err
		}
	}
	var lost <-chan struct{} // nil without a lease
	if s.lease != nil {
		lost = s.lease.lostCh
	}
	select {
	case f = <-s.pending:
		s.pending = nil
		return f, true, nil
	case <-ctx.Done():
		return f, false, ctx.Err()
	case <-s.done:
		return f, false, ErrClosed
	case <-lost:
		return f, false, s.leaseLost()
	}
}

// startFetch runs one fetch in a goroutine of its own (block as for
// fetch) whose result pending receives; waits tells whether a caller waits
// for an event from it. The caller holds sem.
func (s *Stream[T]) startFetch(block, waits bool) {
	ch := make(chan fetched[T], 1)
	s.pending, s.pendingBlock = ch, waits
	s.fetchers.Add(1)
	go func() {
		defer s.fetchers.Done()
		ch <- s.fetch(block)
	}()
}

// leaseLost ends the stream with the lease's error.
func (s *Stream[T]) leaseLost() error {
	err := s.lease.check()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term == nil {
		s.term = err
	}
	s.stats.Role = "lost"
	return err
}

// fetch gets the next event from the driver's stream: one round trip at
// most, or as many as it takes when block is set. While it waits it hands
// the postBatchResumeToken of each empty batch to the position (which
// commits it when no event is in flight), and each reply's cluster time.
// When the driver's stream dies of a failure a new watch can mend, it
// watches again.
func (s *Stream[T]) fetch(block bool) fetched[T] {
	for {
		if s.cs == nil || (s.cs.ID() == 0 && s.cs.RemainingBatchLength() == 0 && s.pos.restartPending()) {
			// After an invalidate event, with ContinueAfterInvalidate.
			if err := s.rewatch(errContinueAfterInvalidate); err != nil {
				return fetched[T]{err: err, ended: true}
			}
			if !block && s.cs.RemainingBatchLength() == 0 {
				return fetched[T]{tok: s.driverToken()}
			}
		}
		if err := s.paceResumes(); err != nil { // resumes.go
			return fetched[T]{err: err, ended: true}
		}
		before, left := s.cs.ID(), s.cs.RemainingBatchLength()
		if !s.beginCall(before) {
			return fetched[T]{err: ErrClosed, ended: true} // Close begun: no new getMore
		}
		got := s.cs.TryNext(s.ictx)
		s.endCall()
		s.noteResume(before, got)
		s.noteBatch(got, left)
		if left == 0 {
			// A round trip: the reply brought the server's cluster time.
			s.pos.serverTime(s.clock.read(s.cs))
		}
		if got {
			if f, whole := s.take(); whole {
				return f
			}
			continue // a fragment of a split event: fetch the rest of it
		}
		if err := s.cs.Err(); err != nil {
			if s.ictx.Err() != nil || s.closing() {
				// Close cancelled the call or killed its cursor.
				return fetched[T]{err: ErrClosed, ended: true}
			}
			if s.opts.DisableRewatch || !transient(err) {
				return fetched[T]{err: classify(err), ended: true}
			}
			if err := s.rewatch(err); err != nil {
				return fetched[T]{err: err, ended: true}
			}
			if !block && s.cs.RemainingBatchLength() == 0 {
				return fetched[T]{tok: s.driverToken()}
			}
			continue
		}
		if s.cs.ID() == 0 {
			return fetched[T]{err: errServerClosed, ended: true}
		}
		if s.split.pending() {
			continue // within a split event the resume point stays before it
		}
		tok := s.driverToken()
		if !block {
			return fetched[T]{tok: tok}
		}
		// Every event fetched so far was delivered, so the idle token is
		// the stream's resume point.
		s.pos.idle(s.ictx, tok)
		if s.closing() {
			return fetched[T]{err: ErrClosed, ended: true} // no new getMore for Close to end
		}
	}
}

// interruptFetch ends the driver's call that waits for the server by
// killing its cursor from another connection: the server ends the call
// with CursorKilled (a real server interrupts the getMore of a cursor
// killCursors kills) and the driver keeps its connection, which
// cancelling the call would make it close, so that the next operation
// opened a new connection and filled its buffers again. It reports
// whether the call ended; it gives up, for Close to cancel the call, when
// the kill fails or finds no such cursor (the call may be a new watch),
// or when the call has not ended within interruptWait. Done is closed,
// so the fetch ends rather than watch again.
func (s *Stream[T]) interruptFetch(ctx context.Context) bool {
	id := s.cursorID.Load()
	if id == 0 || s.kill == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, interruptWait)
	defer cancel()
	if killed, err := s.kill(ctx, id); !killed || err != nil {
		return false
	}
	select {
	case <-s.pending:
		return true
	case <-ctx.Done():
		return false
	}
}

// interruptWait bounds how long Close waits for the server to end a call
// whose cursor it killed, the kill included.
const interruptWait = time.Second

// beginCall marks a fetch as in a call of the driver's stream, on cursor
// id, unless Close has begun: then it reports false and the fetch makes no
// call. Close, which begins before it looks, sees either the call marked
// or a fetch that makes none.
func (s *Stream[T]) beginCall(id int64) bool {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if s.closing() {
		return false
	}
	s.cursorID.Store(id)
	s.inCall = true
	return true
}

func (s *Stream[T]) endCall() {
	s.callMu.Lock()
	s.inCall = false
	s.callMu.Unlock()
}

// inDriverCall reports whether a fetch is in a call of the driver's
// stream (otherwise it is between calls, in a new watch or a backoff,
// which Close cancels).
func (s *Stream[T]) inDriverCall() bool {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return s.inCall
}

// closing reports whether Close has begun.
func (s *Stream[T]) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// take copies the driver's current event and decodes it. whole is false
// when the event is a fragment of a split event that is not complete yet.
func (s *Stream[T]) take() (f fetched[T], whole bool) {
	f, whole = s.takeRaw()
	if whole && f.got {
		f.val, f.err = s.decode(f.raw, f.id)
	}
	return f, whole
}

// takeRaw is take without the decode: f.val is zero and f.err nil for an
// event (f.got); an error that ends the stream is in f as take returns it.
func (s *Stream[T]) takeRaw() (f fetched[T], whole bool) {
	raw, at, whole, err := s.join(s.cs.Current)
	if err != nil {
		return fetched[T]{err: err, ended: true}, true
	}
	if !whole {
		return f, false
	}
	id, ok := at.id.in(raw).DocumentOK()
	if !ok {
		return fetched[T]{err: errMissingID, ended: true}, true
	}
	s.taken, s.afterStart = true, false
	tok := tokenOf(bson.Raw(id))
	after := tok
	if d := s.cs.ResumeToken(); !bytes.Equal(d, id) {
		// The last event of a batch: the driver resumes from the
		// batch's postBatchResumeToken.
		after = s.driverToken()
	}
	f = fetched[T]{got: true, raw: raw, id: tok, tok: after, invalidated: isInvalidateOp(at.operationType.in(raw)),
		key: documentKeyAt{ok: true, ns: at.ns, documentKey: at.documentKey}}
	if t, i, ok := at.clusterTime.in(raw).TimestampOK(); ok {
		f.ct = bson.Timestamp{T: t, I: i}
	}
	if ms, ok := at.wallTime.in(raw).DateTimeOK(); ok {
		f.wall = time.UnixMilli(ms)
	}
	return f, true
}

// noteBatch counts a batch of the server when the driver's TryNext that
// returned got started one: left documents remained of the batch in hand
// before it, or the batch in hand is the first of a new watch.
func (s *Stream[T]) noteBatch(got bool, left int) {
	fresh := left == 0 || s.firstBatch
	s.firstBatch = false
	if !got || !fresh {
		return
	}
	n := s.cs.RemainingBatchLength() + 1
	s.mu.Lock()
	s.stats.Batches++
	s.stats.LastBatch = n
	s.mu.Unlock()
}

// driverToken returns the driver's resume token, copied once per change.
func (s *Stream[T]) driverToken() Token {
	d, m := s.cs.ResumeToken(), &s.driverTok
	if !bytes.Equal(d, m.raw) || (d == nil) != (m.raw == nil) {
		m.raw = bytes.Clone(d)
		m.tok = tokenOf(bson.Raw(m.raw))
	}
	return m.tok
}

// Alive reports whether the stream may return more events: it is false after
// Close, after an invalidate event and after an error that ended the stream.
// True does not promise an event.
func (s *Stream[T]) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.term == nil
}

// ResumeToken returns the token to resume after the last event returned:
// that event's _id, or the server's postBatchResumeToken once the batch it
// came in is consumed or while the stream is idle. Before the first event it
// is the startAfter or resumeAfter token given to Watch, or the
// postBatchResumeToken of an empty first batch; otherwise it is the zero
// Token. Pass it to options.ChangeStream().SetResumeAfter(tok.Raw()) to go
// on in a new stream.
func (s *Stream[T]) ResumeToken() Token {
	return s.pos.resumeToken()
}

// Close ends the stream and kills its server cursor. It may be called from
// any goroutine, also while another is blocked in Next or ranging over All:
// that call returns ErrClosed at once, and the range loop ends without an
// error. Close is idempotent; calls after the first return nil (but the
// first call after an All loop closed the stream returns that close's
// error).
//
// With Options.Store, Close saves the checkpoint with ctx: the position
// after the last event Next or TryNext returned (call Close when you are
// done with it), or, when All's loop body is running or left the loop
// early, after the last event whose loop body completed. With
// Options.ManualCommit, and for Batches, it saves the position last
// committed and commits nothing new. Close returns the error of that save.
// The save comes before the server cursor is killed, so that a server that
// is unreachable does not use up ctx first; Close then also returns the
// error of killing the cursor, and Stats tells the two apart
// (Stats().CheckpointErr is nil after a successful save).
func (s *Stream[T]) Close(ctx context.Context) error {
	return s.close(ctx, true)
}

// close is Close; commitLast tells whether the last event returned may be
// committed.
func (s *Stream[T]) close(ctx context.Context, commitLast bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	if s.closed {
		err := s.loopErr
		s.loopErr = nil
		s.mu.Unlock()
		return err
	}
	s.closed = true
	close(s.done)
	manual := s.manual
	s.mu.Unlock()

	// Callers blocked on the stream see done and let go of sem.
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.inBody.Load() || manual {
		// The last event delivered is not done: its All loop body runs,
		// or is about to, or its commits are the caller's.
		commitLast = false
	}
	s.ahead.stop() // decodeahead.go: no decoder outlives Close
	var killID int64
	if s.pending != nil {
		select {
		case <-s.pending:
		default:
			if !s.inDriverCall() || !s.interruptFetch(ctx) {
				// Cancel the driver's call; the driver then closes its
				// connection and forgets its cursor without killing it,
				// so kill it here.
				s.cancel()
				<-s.pending
				killID = s.cursorID.Load()
			}
		}
		s.pending = nil
	}
	s.cancel()
	// A fetch goroutine whose result was taken may still be returning.
	s.fetchers.Wait()
	// The checkpoint first: killing cursors on a server that is down can
	// use up ctx, and a local save must not wait for the network.
	err := s.pos.close(ctx, commitLast)
	if err != nil {
		s.log.Warn("changestream: could not save the checkpoint on Close", "err", err)
	}
	if s.snap != nil {
		s.snap.close(ctx)
	}
	if s.cs != nil {
		err = errors.Join(err, s.cs.Close(ctx))
	}
	if killID != 0 && s.kill != nil {
		if _, kerr := s.kill(ctx, killID); kerr != nil {
			s.log.Warn("changestream: could not kill the server cursor of an interrupted call", "cursor", killID, "err", kerr)
			err = errors.Join(err, kerr)
		}
	}
	if s.lease != nil {
		if lerr := s.lease.release(ctx); lerr != nil {
			s.log.Warn("changestream: could not release the lease", "err", lerr)
			err = errors.Join(err, lerr)
		}
	}
	if s.unlock != nil {
		if uerr := s.unlock(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("changestream: release the lock of stream %q: %w", s.opts.Name, uerr))
		}
	}
	s.log.Debug("changestream: closed")
	return err
}
