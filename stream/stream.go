package stream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
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
// Next, TryNext and All may be called from one goroutine at a time (calls
// from several goroutines are serialised); Alive, ResumeToken and Close may
// be called from any goroutine at any time.
type Stream[T any] struct {
	cs   *mongo.ChangeStream
	kind int
	env  envelopeDecoder
	log  *slog.Logger
	kill func(ctx context.Context, id int64) error // kills a server cursor; nil if the target is unknown

	// What a new watch needs: the same target, pipeline and driver options.
	target   Watcher
	pipeline any
	csOpts   []options.Lister[options.ChangeStreamOptions]
	opts     Options
	backoff  backoff
	ck       *checkpointer // nil without Options.Store

	// sem is held by the goroutine that may touch cs and the fields below it
	// (a Next, TryNext or Close call), except while a fetch runs: then the
	// fetch goroutine owns cs until it sends on pending.
	sem    chan struct{}
	done   chan struct{} // closed by Close
	ictx   context.Context
	cancel context.CancelFunc // cancels ictx, the context of every driver call
	used   chan struct{}      // holds one token until All is first ranged over

	pending      chan fetched[T] // result of the fetch in flight, nil if none
	pendingBlock bool            // that fetch waits for an event
	cursorID     int64           // the server cursor of the latest driver call
	slab         []byte          // see own
	drvRaw       []byte          // the driver's last resume token and
	drvTok       Token           // our copy of it
	afterStart   bool            // cs was opened with startAfter and has returned no event
	taken        bool            // an event was taken from a driver stream
	userResume   bool            // the user's driver options set a resume option Watch used
	invTok       Token           // an invalidate event's token to watch again after
	split        reassembler     // split.go: fragments of an event not yet whole
	codec        codec           // decode.go: how documents are decoded
	pf           prefetcher      // prefetch.go: fetching ahead
	resumeRun    resumeRun       // resumes.go: the driver's resumes without an event

	mu          sync.Mutex
	closed      bool
	token       Token // resume token after the last event returned
	term        error // why the stream ended, if it did
	stats       Stats // Events, Resumes and Rewatches
	uncommitted int   // events returned since the last commit
	lastCT      bson.Timestamp
	lastWall    time.Time
	inBody      bool  // an All loop body is running
	ckErr       error // a *CheckpointError of an idle save, for the next call
	loopErr     error // the error of the Close made by All, for the next Close
}

// fetched is the outcome of one fetch from the driver's stream.
type fetched[T any] struct {
	val         T
	got         bool  // an event came: val (or err, a *DecodeError) is it
	tok         Token // the resume token after this fetch
	err         error // the event's *DecodeError, or why the stream ended
	ended       bool  // err ended the stream
	invalidated bool  // the event is an invalidate
	ct          bson.Timestamp
	wall        time.Time // the event's clusterTime and wallTime
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
		sem:      make(chan struct{}, 1),
		done:     make(chan struct{}),
		used:     make(chan struct{}, 1),
	}
	userStartAfter, userResume := driverResumeOptions(csOpts)
	from := resumePoint{how: fromOriginal}
	if o.Store != nil {
		s.ck = newCheckpointer(&o)
		cp, ok, err := loadCheckpoint(ctx, &o)
		if err != nil {
			return nil, err
		}
		if ok {
			from = resumePoint{how: fromResumeAfter, tok: cp.Token}
			s.ck.loaded(cp)
			if userResume {
				s.log.Info("changestream: resuming from the saved checkpoint; the resume option passed to Watch only applies when there is none")
			}
		}
	}
	cs, err := s.open(ctx, from)
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
	s.cs = cs
	s.afterStart = from.how == fromStartAfter || (from.how == fromOriginal && userStartAfter)
	s.userResume = from.how == fromOriginal && userResume
	s.used <- struct{}{}
	s.env.decode = s.decodeDoc
	// The driver's calls never see the caller's contexts: a context that
	// expires during a getMore would kill the driver's stream for good.
	// They use this one, which only Close cancels.
	s.ictx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.token = s.driverToken()
	s.log.Debug("changestream: opened", "resume", from.how, "resumeToken", s.token.String())
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
// opened on target, or nil when target is not a driver type.
func killerFor(target Watcher) func(context.Context, int64) error {
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
	return func(ctx context.Context, id int64) error {
		return db.RunCommand(ctx, bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: bson.A{id}}}).Err()
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
	var zero T
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-s.done:
		return zero, false, ErrClosed
	default:
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.done:
		return zero, false, ErrClosed
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
	defer func() { <-s.sem }()

	s.mu.Lock()
	closed, term := s.closed, s.term
	s.mu.Unlock()
	if closed {
		return zero, false, ErrClosed
	}
	// The caller asks for the next event: it is done with the last one.
	if err := s.commit(s.ictx, false); err != nil {
		return zero, false, err
	}
	if term != nil {
		return zero, false, term
	}
	for {
		f, ok, err := s.await(ctx, block)
		if err != nil || !ok {
			return zero, false, err
		}
		s.mu.Lock()
		switch {
		case f.ended:
			s.term = f.err
		case f.got && f.invalidated && !s.opts.ContinueAfterInvalidate:
			s.token = f.tok
			s.term = ErrInvalidated
		default:
			s.token = f.tok
		}
		if f.got {
			s.uncommitted++
			s.lastCT, s.lastWall = f.ct, f.wall
			if f.err == nil {
				s.stats.Events++
			}
		}
		s.mu.Unlock()
		if f.got && !f.ended {
			s.prefetch() // prefetch.go
		}
		switch {
		case f.ended:
			s.log.Debug("changestream: ended", "err", f.err)
			return zero, false, f.err
		case !f.got && block:
			continue
		case !f.got:
			return zero, false, nil
		case f.err != nil:
			return zero, false, f.err
		}
		return f.val, true, nil
	}
}

// commit commits the position after the events returned so far, and saves
// it when the throttle allows or force is set.
func (s *Stream[T]) commit(ctx context.Context, force bool) error {
	if s.ck == nil {
		return nil
	}
	s.mu.Lock()
	tok, n, ct, wall := s.token, s.uncommitted, s.lastCT, s.lastWall
	s.uncommitted = 0
	idleErr := s.ckErr
	s.ckErr = nil
	s.mu.Unlock()
	if tok.IsZero() {
		return idleErr
	}
	sctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	if err := s.ck.commit(sctx, checkpointAt(tok, ct, wall), n, force); err != nil {
		return err
	}
	return idleErr
}

// commitIdle commits the postBatchResumeToken tok of an empty batch while
// the caller waits in Next: every event returned before was committed when
// it called. It runs on the fetch goroutine.
func (s *Stream[T]) commitIdle(tok Token) {
	if s.ck == nil || tok.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(s.ictx, saveTimeout)
	defer cancel()
	if err := s.ck.commit(ctx, checkpointAt(tok, bson.Timestamp{}, time.Time{}), 0, false); err != nil {
		s.mu.Lock()
		s.ckErr = err
		s.mu.Unlock()
	}
}

// await returns the next fetch result: one waiting from an earlier call, one
// from the batch in hand, or a new fetch's. ok is false when TryNext finds a
// blocking fetch still waiting.
func (s *Stream[T]) await(ctx context.Context, block bool) (f fetched[T], ok bool, err error) {
	if s.pending == nil {
		if s.cs != nil && s.cs.RemainingBatchLength() > 0 {
			return s.fetch(false), true, nil // no I/O
		}
		if err := ctx.Err(); err != nil {
			return f, false, err
		}
		ch := make(chan fetched[T], 1)
		s.pending, s.pendingBlock = ch, block
		go func() { ch <- s.fetch(block) }()
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
	select {
	case f = <-s.pending:
		s.pending = nil
		return f, true, nil
	case <-ctx.Done():
		return f, false, ctx.Err()
	case <-s.done:
		return f, false, ErrClosed
	}
}

// fetch gets the next event from the driver's stream: one round trip at
// most, or as many as it takes when block is set. While it waits it
// publishes (and commits) the postBatchResumeToken of each empty batch.
// When the driver's stream dies of a failure a new watch can mend, it
// watches again.
func (s *Stream[T]) fetch(block bool) fetched[T] {
	for {
		if s.cs == nil || (s.cs.ID() == 0 && s.cs.RemainingBatchLength() == 0 && !s.invTok.IsZero()) {
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
		before := s.cs.ID()
		s.cursorID = before
		got := s.cs.TryNext(s.ictx)
		s.noteResume(before, got)
		if got {
			if f, whole := s.take(); whole {
				return f
			}
			continue // a fragment of a split event: fetch the rest of it
		}
		if err := s.cs.Err(); err != nil {
			if s.ictx.Err() != nil {
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
		// Every event fetched so far was returned, so the idle token is
		// the stream's resume point.
		s.mu.Lock()
		s.token = tok
		s.mu.Unlock()
		s.commitIdle(tok)
	}
}

// take copies the driver's current event and decodes it. whole is false
// when the event is a fragment of a split event that is not complete yet.
func (s *Stream[T]) take() (f fetched[T], whole bool) {
	raw, whole, err := s.join(s.cs.Current)
	if err != nil {
		return fetched[T]{err: err, ended: true}, true
	}
	if !whole {
		return f, false
	}
	id, ok := bsoncore.Document(raw).Lookup("_id").DocumentOK()
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
	inv := isInvalidate(raw)
	if inv && s.opts.ContinueAfterInvalidate {
		s.invTok = tok
	}
	f = fetched[T]{got: true, tok: after, invalidated: inv}
	if t, i, ok := raw.Lookup("clusterTime").TimestampOK(); ok {
		f.ct = bson.Timestamp{T: t, I: i}
	}
	if ms, ok := raw.Lookup("wallTime").DateTimeOK(); ok {
		f.wall = time.UnixMilli(ms)
	}
	f.val, f.err = s.decode(raw, tok)
	return f, true
}

// driverToken returns the driver's resume token, copied once per change.
func (s *Stream[T]) driverToken() Token {
	d := s.cs.ResumeToken()
	if !bytes.Equal(d, s.drvRaw) || (d == nil) != (s.drvRaw == nil) {
		s.drvRaw = bytes.Clone(d)
		s.drvTok = tokenOf(bson.Raw(s.drvRaw))
	}
	return s.drvTok
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
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
// early, after the last event whose loop body completed. Close returns the
// error of that save. The save comes before the server cursor is killed,
// so that a server that is unreachable does not use up ctx first; Close
// then also returns the error of killing the cursor, and Stats tells the
// two apart (Stats().CheckpointErr is nil after a successful save).
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
	if s.inBody {
		commitLast = false
	}
	s.mu.Unlock()

	// Callers blocked on the stream see done and let go of sem.
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	var killID int64
	if s.pending != nil {
		select {
		case <-s.pending:
		default:
			// Interrupt the driver's call; the driver forgets its cursor
			// without killing it, so kill it here.
			s.cancel()
			<-s.pending
			killID = s.cursorID
		}
		s.pending = nil
	}
	s.cancel()
	// The checkpoint first: killing cursors on a server that is down can
	// use up ctx, and a local save must not wait for the network.
	var err error
	if s.ck != nil {
		if commitLast {
			err = s.commit(ctx, true)
		} else {
			err = s.ck.flush(ctx)
		}
		if err != nil {
			s.log.Warn("changestream: could not save the checkpoint on Close", "err", err)
		}
	}
	if s.cs != nil {
		err = errors.Join(err, s.cs.Close(ctx))
	}
	if killID != 0 && s.kill != nil {
		if kerr := s.kill(ctx, killID); kerr != nil {
			s.log.Warn("changestream: could not kill the server cursor of an interrupted call", "cursor", killID, "err", kerr)
			err = errors.Join(err, kerr)
		}
	}
	s.log.Debug("changestream: closed")
	return err
}
