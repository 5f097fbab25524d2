package stream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"

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
	split        reassembler     // split.go: fragments of an event not yet whole
	codec        codec           // decode.go: how documents are decoded
	pf           prefetcher      // prefetch.go: fetching ahead

	mu     sync.Mutex
	closed bool
	token  Token // resume token after the last event returned
	term   error // why the stream ended, if it did
}

// fetched is the outcome of one fetch from the driver's stream.
type fetched[T any] struct {
	val         T
	got         bool  // an event came: val (or err, a *DecodeError) is it
	tok         Token // the resume token after this fetch
	err         error // the event's *DecodeError, or why the stream ended
	ended       bool  // err ended the stream
	invalidated bool  // the event is an invalidate
}

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
	if o.SplitEvents { // split.go
		if pipeline, err = withSplitStage(pipeline); err != nil {
			return nil, err
		}
	}
	cs, err := target.Watch(ctx, pipeline, csOpts...)
	if err != nil {
		return nil, classify(err)
	}
	s := &Stream[T]{
		cs:   cs,
		kind: decodeKind[T](),
		log:  o.Logger,
		kill: killerFor(target),
		pf:   prefetcher{off: o.DisablePrefetch},
		sem:  make(chan struct{}, 1),
		done: make(chan struct{}),
		used: make(chan struct{}, 1),
	}
	s.used <- struct{}{}
	s.env.decode = s.decodeDoc
	// The driver's calls never see the caller's contexts: a context that
	// expires during a getMore would kill the driver's stream for good.
	// They use this one, which only Close cancels.
	s.ictx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.token = s.driverToken()
	s.log.Debug("changestream: opened", "resumeToken", s.token.String())
	return s, nil
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
// A *DecodeError means the event could not be decoded into T; the stream
// goes on with the next event. After Close, Next returns ErrClosed; after an
// invalidate event, ErrInvalidated; after any other error the stream is
// over and Next returns that error again.
func (s *Stream[T]) Next(ctx context.Context) (T, error) {
	v, _, err := s.next(ctx, true)
	return v, err
}

// TryNext returns the next event if one is available after at most one
// round trip to the server (one getMore; a resume after a network error
// adds its own). It returns (zero, false, nil) when no event came; call it
// again later. Errors are as for Next; with a *DecodeError the event is
// consumed and ok is false.
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
		case f.got && f.invalidated:
			s.token = f.tok
			s.term = ErrInvalidated
		default:
			s.token = f.tok
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

// await returns the next fetch result: one waiting from an earlier call, one
// from the batch in hand, or a new fetch's. ok is false when TryNext finds a
// blocking fetch still waiting.
func (s *Stream[T]) await(ctx context.Context, block bool) (f fetched[T], ok bool, err error) {
	if s.pending == nil {
		if s.cs.RemainingBatchLength() > 0 {
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
// publishes the postBatchResumeToken of each empty batch.
func (s *Stream[T]) fetch(block bool) fetched[T] {
	for {
		s.cursorID = s.cs.ID()
		if s.cs.TryNext(s.ictx) {
			if f, whole := s.take(); whole {
				return f
			}
			continue // a fragment of a split event: fetch the rest of it
		}
		if err := s.cs.Err(); err != nil {
			return fetched[T]{err: classify(err), ended: true}
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
	tok := tokenOf(bson.Raw(id))
	after := tok
	if d := s.cs.ResumeToken(); !bytes.Equal(d, id) {
		// The last event of a batch: the driver resumes from the
		// batch's postBatchResumeToken.
		after = s.driverToken()
	}
	v, err := s.decode(raw, tok)
	return fetched[T]{val: v, got: true, tok: after, err: err, invalidated: isInvalidate(raw)}, true
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
// error. Close is idempotent; calls after the first return nil.
func (s *Stream[T]) Close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
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
	err := s.cs.Close(ctx)
	if killID != 0 && s.kill != nil {
		if kerr := s.kill(ctx, killID); kerr != nil {
			s.log.Warn("changestream: could not kill the server cursor of an interrupted call", "cursor", killID, "err", kerr)
			err = errors.Join(err, kerr)
		}
	}
	s.log.Debug("changestream: closed")
	return err
}
