package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
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
// When nothing else is in flight and the handler's calls are short (about
// a microsecond), Process runs the handler on the goroutine that takes
// events from the stream, which saves handing each event to a worker; a
// call there that lasts over a millisecond is handed over to a worker's
// role and a new goroutine takes the next events, so a handler that turns
// slow holds the others back for a millisecond or two at most. The
// ordering and commit guarantees are the same either way.
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
			return processEvent[T]{val: d.val, raw: d.raw, at: d.key, tok: d.id, more: d.more}, nil
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
// the workers, and commits the low-water mark as they complete. When
// nothing else is in flight and handlers are short, intake runs the
// handler itself and commits (see intake); a watchdog (watch) hands a call
// that lasts over to a worker's role.
type processor[T any] struct {
	// take blocks until the next event and returns it, or the error that
	// ends intake (the event of a *DecodeError is an event, with
	// decodeErr set). It runs on the intake goroutine only.
	take func(ctx context.Context) (processEvent[T], error)
	// commit commits the position after an event and every event before
	// it. It runs through gate only.
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

	gate        commitGate // commit, for run and intake
	promotedSeq int64      // the seq of the promoted event that runs (see watch)

	// Owned by the goroutine that is intake: handed over when the watchdog
	// promotes a call (under the inbox's mu).
	order int64 // events taken, which numbers them
	calls int   // handler calls intake made

	// lastCall is how long the latest timed handle call took, in
	// nanoseconds (unknown, so long, at first); intake handles an event
	// itself only after a call that took at most inlineLimit. Workers time
	// every call, intake one in inlineSample (see handleTimed).
	lastCall  atomic.Int64
	inlineMax int64 // inlineLimit in nanoseconds; tests set it
}

// inlineLimit is the longest handler call after which intake handles an
// event itself, when nothing else is in flight, instead of handing it to a
// worker. Handing an event over and reporting it back costs about a
// microsecond of the stream's time (two goroutine switches): a handler
// that takes longer is better run beside intake, which meanwhile takes the
// next events; one that takes less is cheaper run in place. Running in
// place is sticky while events come faster than handlers take (intake,
// busy, hands nothing over), so the limit stays at the break-even point.
const inlineLimit = time.Microsecond

// inlineSample: intake times one in inlineSample of the calls it makes.
// Reading the clock twice costs about 70 ns here, a third of what the
// engine costs an event otherwise. A call that turns slow is handed over
// by the watchdog (watch) within two ticks, and a handler that turned
// slow is noticed within inlineSample calls, after which the events go to
// the workers again.
const inlineSample = 8

// arrival is what the intake goroutine passes to run: an event it did not
// handle itself, or the error that ended intake.
type arrival[T any] struct {
	ev  processEvent[T]
	err error // intake ended
	// fatal: err stops Process at once (a commit of intake failed), not
	// after the events taken were handled, as when the stream ends.
	fatal bool
	// running: ev is the event of a call the watchdog promoted (only its
	// token, order, key and barrier are set); it runs. report: res is the
	// report on that call. Both come in order with the other arrivals,
	// and also once Process stops.
	running, report bool
	res             result
}

func newProcessor[T any](take func(context.Context) (processEvent[T], error), commit func(Token) error,
	handler func(context.Context, T) error, o ProcessOptions[T], log *slog.Logger,
) *processor[T] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &processor[T]{
		take: take, commit: commit, handler: handler, o: o, log: log,
		backoff: backoff{initial: o.RetryDelay, max: o.RetryMaxDelay},
		win:     newWindow[T](o.MaxInFlight),
		hasher:  newKeyHasher(),
		tails:   make(map[uint64]int64),
		ready:   newSeqQueue(o.MaxInFlight),
		held:    newSeqQueue(o.MaxInFlight),
	}
	p.gate.commit = commit
	p.lastCall.Store(math.MaxInt64)
	p.inlineMax = int64(inlineLimit)
	return p
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
	var workers sync.WaitGroup
	in := &intakeEnv[T]{ctx: ictx, hctx: hctx, box: box, jobs: jobs, stop: stop, done: intakeDone, workers: &workers}
	go p.intake(in)
	for range p.o.Workers {
		workers.Go(func() { p.work(hctx, jobs, box, stop) })
	}
	workers.Go(func() { p.watch(in) })

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
		box.halt()
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
		case a.running:
			p.arriveRunning(a.ev)
		case a.report:
			p.finish(a.res, halt)
		case p.stopping:
			// Taken after Process stopped: not handled, not committed.
		case a.err != nil && (a.fatal || errors.Is(a.err, ErrClosed) || ctx.Err() != nil):
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
	passed, mark, markOrder := 0, Token{}, int64(0)
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
		if err := p.gate.through(mark, markOrder); err != nil {
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
		if _, any := box.intakeHandling(); p.stopping && p.running == 0 && !any {
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
		if n, tok, order := p.win.advance(); n > 0 {
			passed, mark, markOrder = passed+n, tok, order
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
		// A handler intake runs is one more still running; intake, like
		// the workers, is not waited for then (it touches the stream no
		// more: stop is closed, and the events it handled before are
		// committed here).
		running := p.running
		if inline, _ := box.intakeHandling(); inline {
			running++
		} else {
			<-intakeDone
		}
		if err := p.commitQuiet(box); err != nil {
			p.err = errors.Join(p.err, err)
		}
		return errors.Join(p.err, fmt.Errorf("changestream: Process: %d handlers were still running after the grace period of %v; their events were not committed", running, p.o.Grace))
	}
	workers.Wait()
	<-intakeDone
	// The events intake handled and did not commit: intake commits none
	// once Process stops.
	if err := p.commitQuiet(box); err != nil && p.err == nil {
		p.err = err
	}
	return p.err
}

// commitGate commits for run and intake, which handle events of their
// own (intake's in place, see intake): a commit through an event older
// than one committed already is skipped, so that the position moves only
// forward though the two commit each for itself. Both only commit events
// such that they and every event before them were handled.
type commitGate struct {
	mu     sync.Mutex
	commit func(Token) error
	last   int64 // the order of the newest event committed
}

// through commits the position through the event tok, at order.
func (g *commitGate) through(tok Token, order int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if order <= g.last {
		return nil
	}
	g.last = order
	return g.commit(tok)
}

// commitQuiet commits the events intake handled and frees their slots.
func (p *processor[T]) commitQuiet(box *inbox[T]) error {
	tok, order, n := box.takeQuiet()
	if n == 0 {
		return nil
	}
	err := p.gate.through(tok, order)
	box.release(n)
	return err
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
//
// It handles an event itself, with hctx, the handlers' context, when
// nothing else is in flight (beginInline) and the last handler call timed
// was short (inlineLimit): then the event's turn has come (every event
// before it was handled) and a worker would only add the cost of the
// hand-off. It commits such events itself, without run, quietMax at a
// time, before the window is full (acquire) and before a take that may
// wait for the server (the event before it was the last in memory), so
// that an idle stream has nothing handled and uncommitted; once Process
// stops, run commits them. Only the first attempt runs here: an event
// whose handler failed goes to the workers, which retry it with backoff
// while intake goes on. An event that did not decode goes to them too.
func (p *processor[T]) intake(in *intakeEnv[T]) {
	box := in.box
	handedOver := false
	defer func() {
		if !handedOver {
			close(in.done)
		}
	}()
	free := func() bool {
		if err := p.commitQuiet(box); err != nil {
			box.arrive(arrival[T]{err: err, fatal: true})
			return false
		}
		return true
	}
	for box.acquire(in.stop, free) {
		ev, err := p.take(in.ctx)
		if err == nil {
			err = p.keyOf(&ev)
		}
		p.order++
		ev.order = p.order
		if err == nil && ev.decodeErr == nil && p.lastCall.Load() <= p.inlineMax && box.beginInline(&ev) {
			var herr error
			if p.calls++; p.calls%inlineSample == 0 {
				t0 := time.Now()
				herr = p.call(in.hctx, ev.val)
				p.lastCall.Store(int64(time.Since(t0)))
			} else {
				herr = p.call(in.hctx, ev.val)
			}
			quiet, promoted := box.endInline(herr == nil, ev.tok, ev.order)
			if promoted {
				// Another goroutine is intake now: this one ends the event
				// as a worker would.
				handedOver = true
				p.finishPromoted(in, &ev, herr)
				return
			}
			if herr == nil {
				if (quiet >= box.quietMax || !ev.more) && !free() {
					return
				}
				continue
			}
			// The workers retry it, with backoff, while intake goes on.
			ev.failed, ev.lastErr = 1, herr
		}
		box.arrive(arrival[T]{ev: ev, err: err})
		if err != nil {
			return
		}
		if !ev.more && !free() {
			return
		}
	}
}

// intakeEnv is what intake runs with, handed from one intake goroutine to
// the next.
type intakeEnv[T any] struct {
	ctx     context.Context // taking's
	hctx    context.Context // the handlers'
	box     *inbox[T]
	jobs    *jobQueue[T]
	stop    <-chan struct{}
	done    chan struct{} // closed by the last intake goroutine
	workers *sync.WaitGroup
}

// finishPromoted ends, on the goroutine that was intake, the event of a
// call the watchdog promoted: it retries a failed first attempt as a
// worker does, and reports.
func (p *processor[T]) finishPromoted(in *intakeEnv[T], ev *processEvent[T], herr error) {
	defer in.workers.Done() // added by the watchdog
	r := result{done: herr == nil}
	if herr != nil {
		j := job[T]{val: ev.val, raw: ev.raw, tok: ev.tok, userKey: ev.userKey, failed: 1, lastErr: herr}
		r = p.handleJob(in.hctx, &j, in.jobs, in.box, in.stop)
	}
	r.promoted = true
	in.box.reportPromoted(r)
}

// watch is the watchdog of the calls intake runs: a call that runs for a
// tick of inlineWatch at least is promoted, that is, its goroutine stops
// being intake and ends the call as a worker, and a new intake goroutine
// takes the next events, so that a handler that turned slow does not hold
// the other events back for longer than that. Its event goes to run as
// running, in stream order, so that events of its key wait for it and a
// barrier for it, as for any event a worker runs. The watchdog parks
// while intake makes no calls. It returns once Process stops.
func (p *processor[T]) watch(in *intakeEnv[T]) {
	t := time.NewTicker(inlineWatch)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-t.C:
		case <-in.stop:
			return
		}
		promote, park := in.box.watchTick(&seen, func() { in.workers.Add(1) })
		switch {
		case promote:
			p.lastCall.Store(math.MaxInt64) // slow: a worker's fast call lets intake run handlers again
			go p.intake(in)
		case park:
			t.Stop()
			select {
			case <-in.box.watchWake:
			case <-in.stop:
				return
			}
			t.Reset(inlineWatch)
		}
	}
}

// inlineWatch is the watchdog's tick: a call intake runs is promoted
// after between one and two of them.
const inlineWatch = time.Millisecond

// arriveRunning puts the event of a promoted call in the window as
// admitted and running: every event before it was handled (it ran on
// intake), so it holds no place in a queue; events of its key wait for
// it, and it is a barrier if it has no key.
func (p *processor[T]) arriveRunning(ev processEvent[T]) {
	seq := p.win.add(ev)
	p.promotedSeq = seq
	p.admitted++
	p.running++
	if ev.barrier {
		p.barrier = true
	} else {
		p.tails[ev.key] = seq
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
		q.jobs = append(q.jobs, job[T]{seq: seq, val: ev.val, raw: ev.raw, tok: ev.tok, userKey: ev.userKey, decodeErr: ev.decodeErr, failed: ev.failed, lastErr: ev.lastErr})
	}
	q.wakeLocked(n)
	q.mu.Unlock()
	p.running += n
}

// finish records a worker's report: a completed event lets the next of its
// key (or what a barrier held back) go.
func (p *processor[T]) finish(r result, halt func(error)) {
	if r.promoted {
		r.seq = p.promotedSeq
	}
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
