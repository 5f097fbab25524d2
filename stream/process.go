package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Process runs handler for the events of s, several at once, and commits
// the stream's position as they complete. It returns when ctx ends (with
// ctx.Err()), when s is closed (nil), when the stream ends (with its error,
// such as ErrInvalidated), or when an event cannot be handled (see
// ProcessOptions.DeadLetter); s is closed when Process returns.
//
// Ordering: events with equal keys (ProcessOptions.Key; by default the
// namespace and documentKey, so the events of one document) are handled
// one after another in stream order: the handler for an event starts only
// after the handler for the previous event of its key returned. Events of
// different keys run concurrently, on at most ProcessOptions.Workers
// goroutines, in no promised order. An event without a key (drop, rename,
// dropDatabase, invalidate and other DDL events, by default) is a barrier:
// its handler starts after the handlers of every event before it returned,
// and no event after it starts before it returned.
//
// Commits, at least once: Process commits the position after the newest
// event such that it and every event before it were handled (a low-water
// mark), through Stream.Commit; with Options.Store, saves follow
// Options.CheckpointEvery and CheckpointInterval, and the position is
// saved when Process returns. An event is handled when its handler
// returned nil or DeadLetter took it. After a crash or a restart, the
// events after the saved position come again: at most
// ProcessOptions.MaxInFlight of them beyond the committed events not yet
// saved (CheckpointEvery 1 saves every commit). Process turns off the
// commit on the next call of s for good, as Options.ManualCommit does, so
// s need not be opened with ManualCommit.
//
// Failures: a handler that returns an error or panics (ErrHandlerPanic) is
// called again with backoff, up to ProcessOptions.MaxAttempts calls; then
// ProcessOptions.DeadLetter decides whether Process goes on. An event that
// cannot be decoded into T is handed to DeadLetter without a handler call.
// A *CheckpointError (saves failing, see Options.CheckpointFailures) stops
// Process with it.
//
// Stopping: when the stream ends (ErrInvalidated after an invalidate
// event, ErrHistoryLost, ...), the events already taken are handled as
// usual, and then Process returns the stream's error. Once ctx ends, s is
// closed or an error stops Process, no new event is taken and no new
// handler call starts; the calls running get ProcessOptions.Grace to
// return, with a context that is cancelled when it is over (handler
// contexts carry ctx's values, not its cancellation). Process then commits
// the low-water mark and returns; events whose handler did not return are
// not committed.
//
// Like All, Process consumes the stream: it returns ErrSingleUse when All,
// Batches or Process was already used on s. Invalid arguments (a nil
// stream or handler, invalid ProcessOptions) are errors, and s is left as
// it was.
func Process[T any](ctx context.Context, s *Stream[T], handler func(context.Context, T) error, opts *ProcessOptions[T]) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if s == nil {
		return errors.New("changestream: Process needs a *Stream, not nil")
	}
	if handler == nil {
		return errors.New("changestream: Process needs a handler, not nil")
	}
	o, err := opts.resolve()
	if err != nil {
		return err
	}
	select {
	case <-s.used:
	default:
		return ErrSingleUse
	}
	s.manualCommits()
	take := func(ctx context.Context) (processEvent[T], error) {
		d, _, err := s.deliver(ctx, true)
		if err == nil {
			return processEvent[T]{val: d.val, raw: d.raw, at: d.key, tok: d.id}, nil
		}
		return decodeFailure(d, err)
	}
	p := newProcessor(take, s.Commit, handler, o, s.log)
	err = p.run(ctx)
	if cerr := s.close(context.WithoutCancel(ctx), false); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// decodeFailure is the event of Process for a delivery that failed with
// err: an event with decodeErr set for a *DecodeError (isDecodeError, as
// deliver asks it), else err. (Apart from take, so that the errors.As
// target is allocated only on this path.)
func decodeFailure[T any](d delivery[T], err error) (processEvent[T], error) {
	if isDecodeError(err) {
		return processEvent[T]{raw: d.raw, tok: d.id, decodeErr: err}, nil
	}
	return processEvent[T]{}, err
}

// processor runs Process: an intake goroutine takes events from the
// stream, the coordinating goroutine (run) orders them and hands them to
// the workers, and commits the low-water mark as they complete.
type processor[T any] struct {
	// take blocks until the next event and returns it, or the error that
	// ends intake (the event of a *DecodeError is an event, with
	// decodeErr set). It runs on the intake goroutine only.
	take func(ctx context.Context) (processEvent[T], error)
	// commit commits the position after an event and every event before
	// it. It runs on the coordinating goroutine only.
	commit  func(tok Token) error
	handler func(context.Context, T) error
	o       ProcessOptions[T] // resolved
	log     *slog.Logger
	backoff backoff

	// The state below is owned by run.
	win      window[T]
	hasher   *keyHasher       // used by intake only
	tails    map[uint64]int64 // key → the newest admitted, uncompleted event of that key
	ready    seqQueue         // admitted events whose turn it is, waiting for a worker
	held     seqQueue         // taken, not admitted: behind a barrier
	barrier  bool             // a barrier is admitted and has not completed
	admitted int              // admitted events not completed
	running  int              // events handed to workers and not reported back
	stopping bool
	err      error // the first error that stopped Process
}

// arrival is what the intake goroutine passes to run.
type arrival[T any] struct {
	ev  processEvent[T]
	err error // intake ended
}

func newProcessor[T any](take func(context.Context) (processEvent[T], error), commit func(Token) error,
	handler func(context.Context, T) error, o ProcessOptions[T], log *slog.Logger,
) *processor[T] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &processor[T]{
		take: take, commit: commit, handler: handler, o: o, log: log,
		backoff: backoff{initial: o.RetryDelay, max: o.RetryMaxDelay},
		win:     newWindow[T](o.MaxInFlight),
		hasher:  newKeyHasher(),
		tails:   make(map[uint64]int64),
		ready:   newSeqQueue(o.MaxInFlight),
		held:    newSeqQueue(o.MaxInFlight),
	}
}

// run processes events until ctx ends, intake ends or an error stops it,
// then waits for running handlers up to the grace period, commits the
// low-water mark and returns why it stopped (nil when the stream was
// closed).
func (p *processor[T]) run(ctx context.Context) error {
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	ictx, cancelIntake := context.WithCancel(ctx)
	defer cancelIntake()

	stop := make(chan struct{})
	box := newInbox[T](p.o.MaxInFlight) // process_queue.go
	jobs := newJobQueue[T]()
	intakeDone := make(chan struct{})
	go p.intake(ictx, box, stop, intakeDone)
	var workers sync.WaitGroup
	for range p.o.Workers {
		workers.Go(func() { p.work(hctx, jobs, box, stop) })
	}

	ctxDone := ctx.Done()
	var grace <-chan time.Time
	var graceTimer *time.Timer
	defer func() {
		if graceTimer != nil {
			graceTimer.Stop()
		}
	}()
	halt := func(err error) {
		if p.err == nil {
			p.err = err
		}
		if p.stopping {
			return
		}
		p.stopping = true
		close(stop)
		cancelIntake()
		ctxDone = nil
		graceTimer = time.NewTimer(p.o.Grace)
		grace = graceTimer.C
	}
	graceOver := false
	ending, endErr := false, error(nil) // intake ended with the stream; draining the window
	onArrival := func(a arrival[T]) {
		switch {
		case p.stopping:
			// Taken after Process stopped: not handled, not committed.
		case a.err != nil && (errors.Is(a.err, ErrClosed) || ctx.Err() != nil):
			halt(intakeError(a.err))
		case a.err != nil:
			// The stream ended (ErrInvalidated, ErrHistoryLost, ...): the
			// events taken are handled before Process stops.
			ending, endErr = true, a.err
		default:
			p.arrive(a.ev)
		}
	}

	// The low-water mark moved past passed events since the last commit, to
	// mark. Commits are spaced by commitPause at least, unless half the
	// window waits for one or Process stops, so that many workers on a fast
	// stream do not make a Commit per event; the events' slots are freed
	// only once they are committed, so MaxInFlight bounds what a crash can
	// repeat.
	passed, mark := 0, Token{}
	var lastCommit time.Time
	commitTimer := time.NewTimer(time.Hour)
	commitTimer.Stop()
	defer commitTimer.Stop()
	var commitDue <-chan time.Time
	flush := func() {
		if commitDue != nil {
			commitTimer.Stop()
			commitDue = nil
		}
		if passed == 0 {
			return
		}
		if err := p.commit(mark); err != nil {
			halt(err)
		}
		// Only now may intake take the events that replace them.
		box.release(passed)
		passed = 0
	}
	var arrived []arrival[T]
	var reported []result
	for {
		p.dispatch(jobs)
		if p.stopping && p.running == 0 {
			break
		}
		select {
		case <-box.wake:
		case <-ctxDone:
			halt(ctx.Err())
		case <-grace:
			graceOver = true
		case <-commitDue:
			commitDue = nil
		}
		// Take everything that waits in the inbox (reports, and events
		// taken) before committing once.
		arrived, reported = box.take(arrived, reported)
		for _, r := range reported {
			p.finish(r, halt)
		}
		for _, a := range arrived {
			onArrival(a)
		}
		if n, tok := p.win.advance(); n > 0 {
			passed, mark = passed+n, tok
		}
		if ending && !p.stopping && p.win.len() == 0 {
			halt(endErr)
		}
		if passed > 0 {
			now := time.Now()
			if p.stopping || graceOver || 2*passed >= p.o.MaxInFlight || now.Sub(lastCommit) >= commitPause {
				flush()
				lastCommit = now
			} else if commitDue == nil {
				commitTimer.Reset(commitPause - now.Sub(lastCommit))
				commitDue = commitTimer.C
			}
		}
		if graceOver {
			break
		}
	}
	flush()
	// Jobs no worker took (only when the grace period is over) were never
	// started.
	p.running -= jobs.close()
	if graceOver {
		cancelHandlers()
	} else {
		workers.Wait()
	}
	<-intakeDone
	if graceOver {
		return errors.Join(p.err, fmt.Errorf("changestream: Process: %d handlers were still running after the grace period of %v; their events were not committed", p.running, p.o.Grace))
	}
	return p.err
}

// commitPause is the least time between two commits of Process, unless
// half its window waits for one.
const commitPause = time.Millisecond

// intakeError is what Process returns when intake ended with err.
func intakeError(err error) error {
	if errors.Is(err, ErrClosed) {
		return nil // the stream was closed: a clean stop
	}
	return err
}

// intake takes events from the stream while the window has room, until
// stop is closed or taking fails, and leaves them in box for run.
func (p *processor[T]) intake(ctx context.Context, box *inbox[T], stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for box.acquire(stop) {
		ev, err := p.take(ctx)
		if err == nil {
			err = p.keyOf(&ev)
		}
		box.arrive(arrival[T]{ev: ev, err: err})
		if err != nil {
			return
		}
	}
}

// keyOf sets ev's key, or makes it a barrier.
func (p *processor[T]) keyOf(ev *processEvent[T]) (err error) {
	if ev.decodeErr != nil {
		ev.barrier = true
		return nil
	}
	if p.o.Key == nil {
		ns, dk, ok := documentKeyIn(ev.raw, ev.at)
		if ok {
			ev.key = p.hasher.parts(ns, dk)
		}
		ev.barrier = !ok
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("changestream: Process: ProcessOptions.Key panicked on event %s: %v", ev.tok, r)
		}
	}()
	k, ok := p.o.Key(ev.val)
	if ok {
		ev.key, ev.userKey = p.hasher.string(k), k
	}
	ev.barrier = !ok
	return nil
}

// arrive puts an event taken from the stream in the window and admits
// what may be admitted.
func (p *processor[T]) arrive(ev processEvent[T]) {
	p.held.push(p.win.add(ev))
	p.admit()
}

// admit moves events from held to their key's queue, in stream order,
// until a barrier: a barrier is admitted, alone, once every event before
// it completed, and nothing after it is admitted until it completed.
func (p *processor[T]) admit() {
	for !p.barrier && p.held.len() > 0 {
		seq := p.held.peek()
		ev := p.win.at(seq)
		if ev.barrier {
			if p.admitted > 0 {
				return
			}
			p.held.pop()
			p.barrier = true
			p.admitted++
			p.ready.push(seq)
			return
		}
		p.held.pop()
		p.admitted++
		if tail, ok := p.tails[ev.key]; ok {
			p.win.at(tail).next = seq // runs when tail completed
		} else {
			p.ready.push(seq)
		}
		p.tails[ev.key] = seq
	}
}

// dispatch hands the ready events to the workers, oldest first, in one
// put: the queue wakes as many idle workers as it has new jobs, and busy
// workers take the rest as they finish. Each key has at most one event
// ready or running, so the queue is no longer than the window.
func (p *processor[T]) dispatch(q *jobQueue[T]) {
	n := p.ready.len()
	if p.stopping || n == 0 {
		return
	}
	q.mu.Lock()
	q.compactLocked()
	for p.ready.len() > 0 {
		seq := p.ready.pop()
		ev := p.win.at(seq)
		q.jobs = append(q.jobs, job[T]{seq: seq, val: ev.val, raw: ev.raw, tok: ev.tok, userKey: ev.userKey, decodeErr: ev.decodeErr})
	}
	q.wakeLocked(n)
	q.mu.Unlock()
	p.running += n
}

// finish records a worker's report: a completed event lets the next of its
// key (or what a barrier held back) go.
func (p *processor[T]) finish(r result, halt func(error)) {
	p.running--
	if !r.done {
		if r.err != nil {
			halt(r.err)
		}
		return
	}
	ev := p.win.at(r.seq)
	ev.done = true
	p.admitted--
	switch {
	case ev.barrier:
		p.barrier = false
	case ev.next != 0:
		p.ready.push(ev.next)
	default:
		delete(p.tails, ev.key)
	}
	p.admit()
}
