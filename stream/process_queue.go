package stream

import "sync"

// This file holds the handoffs of Process between its goroutines. Each
// batches: a sender wakes the receiver only when what it fills was empty,
// and the receiver takes everything waiting at once, so that on a busy
// stream one wake-up (a channel operation and a goroutine switch) carries
// many events instead of one each.

// inbox is what the intake goroutine and the workers leave for the
// coordinating goroutine (run): events taken from the stream, and reports
// on events handled. It also counts the slots of the window: the events
// taken, or being taken, and not committed yet, at most max.
type inbox[T any] struct {
	wake chan struct{} // capacity 1: the inbox was filled since run last took it
	room chan struct{} // capacity 1: slots were freed while intake waited for one

	mu       sync.Mutex
	arrivals []arrival[T]
	results  []result
	used     int  // slots taken
	max      int  // MaxInFlight
	waiting  bool // intake waits for a slot
	// pending counts the events handed to run for the workers whose
	// worker has not reported yet: while it is above zero, an event taken
	// may have to wait for one of them, so intake does not handle it.
	pending int
	// handling: intake runs a handler (beginInline) and has not called
	// endInline yet.
	handling bool
	// halted: Process stops (run halted it, or a worker's report will
	// stop it): no handler call starts on intake.
	halted bool
	// quiet counts the events intake handled and did not commit yet (see
	// intake), the newest of which is quietTok, at order quietOrder. They
	// hold their slots until committed.
	quiet      int
	quietTok   Token
	quietOrder int64
	// quietMax is how many of them intake commits at once, at most.
	quietMax int

	// The call intake runs, for the watchdog (processor.watch): callSeq
	// counts the calls begun, cur* is the event of the latest. promoted:
	// the watchdog promoted it, so it runs on as a worker's; promotedRunning:
	// it did not report yet.
	callSeq         uint64
	curTok          Token
	curOrder        int64
	curKey          uint64
	curBarrier      bool
	promoted        bool
	promotedRunning bool
	// watchParked: the watchdog waits for watchWake, which beginInline
	// sends when it begins a call.
	watchParked bool
	watchWake   chan struct{}
}

func newInbox[T any](size int) *inbox[T] {
	return &inbox[T]{
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), watchWake: make(chan struct{}, 1),
		max: size, quietMax: max(1, size/2),
	}
}

// acquire takes a slot for the next event, waiting while the window is
// full; before it waits it calls free (intake commits the events it
// handled, which hold slots), and gives up if free returns false. It
// returns false, taking none, once stop is closed.
func (b *inbox[T]) acquire(stop <-chan struct{}, free func() bool) bool {
	select {
	case <-stop:
		return false
	default:
	}
	b.mu.Lock()
	if b.used >= b.max && b.quiet > 0 {
		b.mu.Unlock()
		if !free() {
			return false
		}
		b.mu.Lock()
	}
	for b.used >= b.max {
		b.waiting = true
		b.mu.Unlock()
		select {
		case <-b.room:
		case <-stop:
			return false
		}
		b.mu.Lock()
	}
	b.used++
	b.mu.Unlock()
	return true
}

// release frees n slots, of events committed.
func (b *inbox[T]) release(n int) {
	b.mu.Lock()
	b.used -= n
	w := b.waiting
	b.waiting = false
	b.mu.Unlock()
	if w {
		select {
		case b.room <- struct{}{}:
		default:
		}
	}
}

// arrive leaves an event taken (or the error that ended intake) for run.
// It never blocks: the slots bound what waits.
func (b *inbox[T]) arrive(a arrival[T]) {
	b.mu.Lock()
	empty := len(b.arrivals) == 0 && len(b.results) == 0
	b.arrivals = append(b.arrivals, a)
	if a.err == nil {
		b.pending++
	}
	b.mu.Unlock()
	if empty {
		b.notify()
	}
}

// report leaves a worker's report for run. It never blocks: there is at
// most one report for each event handed to a worker.
func (b *inbox[T]) report(r result) {
	b.mu.Lock()
	empty := len(b.arrivals) == 0 && len(b.results) == 0
	b.results = append(b.results, r)
	b.pending--
	b.mu.Unlock()
	if empty {
		b.notify()
	}
}

// beginInline reports whether intake may handle the event it took, ev,
// itself: when every event before it was reported handled (so none can be
// ahead of it in its key's order or be a barrier it must wait for) and
// Process is not stopping. Then the inbox counts intake as handling until
// endInline.
func (b *inbox[T]) beginInline(ev *processEvent[T]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	ok := b.pending == 0 && !b.halted
	b.handling = ok
	if !ok {
		return false
	}
	b.callSeq++
	b.curTok, b.curOrder, b.curKey, b.curBarrier = ev.tok, ev.order, ev.key, ev.barrier
	if b.watchParked {
		b.watchParked = false
		select {
		case b.watchWake <- struct{}{}:
		default:
		}
	}
	return true
}

// endInline ends what beginInline began. done: the handler succeeded on
// the event tok, at order, which joins the quiet events; it returns how
// many there are. promoted: the watchdog promoted the call meanwhile, so
// the event is not intake's any more (see processor.watch).
//
// Once Process stops, run waits for intake's handler to return: then
// endInline wakes it.
func (b *inbox[T]) endInline(done bool, tok Token, order int64) (quiet int, promoted bool) {
	b.mu.Lock()
	if b.promoted {
		b.promoted = false
		b.mu.Unlock()
		return 0, true
	}
	b.handling = false
	if done {
		b.quiet++
		b.quietTok, b.quietOrder = tok, order
	}
	quiet, halted := b.quiet, b.halted
	b.mu.Unlock()
	if halted {
		b.notify()
	}
	return quiet, false
}

// watchTick is the watchdog's look at the call intake runs; seen is the
// callSeq of its last look. When the same call runs as at the last look
// (it has run for a tick at least), it promotes it: the event goes to run
// as running, counted in pending until reportPromoted, and onPromote runs
// (under mu). park: no call began since the last look.
func (b *inbox[T]) watchTick(seen *uint64, onPromote func()) (promote, park bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.halted:
		return false, false
	case b.handling && b.callSeq == *seen && !b.promoted:
		b.promoted, b.promotedRunning, b.handling = true, true, false
		b.pending++
		b.arrivals = append(b.arrivals, arrival[T]{
			ev:      processEvent[T]{tok: b.curTok, order: b.curOrder, key: b.curKey, barrier: b.curBarrier},
			running: true,
		})
		onPromote()
		b.notify()
		return true, false
	case !b.handling && b.callSeq == *seen:
		b.watchParked = true
		return false, true
	}
	*seen = b.callSeq
	return false, false
}

// reportPromoted leaves the report on a promoted call for run, after the
// arrival that made it running.
func (b *inbox[T]) reportPromoted(r result) {
	b.mu.Lock()
	empty := len(b.arrivals) == 0 && len(b.results) == 0
	b.arrivals = append(b.arrivals, arrival[T]{res: r, report: true})
	b.pending--
	b.promotedRunning = false
	b.mu.Unlock()
	if empty {
		b.notify()
	}
}

// takeQuiet returns the quiet events, the newest one's token and order,
// for the caller to commit and release; n is 0 when there are none.
func (b *inbox[T]) takeQuiet() (tok Token, order int64, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tok, order, n = b.quietTok, b.quietOrder, b.quiet
	b.quiet, b.quietTok = 0, Token{}
	return tok, order, n
}

// halt makes beginInline refuse from now on.
func (b *inbox[T]) halt() {
	b.mu.Lock()
	b.halted = true
	b.mu.Unlock()
}

// intakeHandling reports whether intake runs a handler (inline), and
// whether it or a call the watchdog promoted runs (any).
func (b *inbox[T]) intakeHandling() (inline, any bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handling, b.handling || b.promotedRunning
}

// notify wakes run; a wake-up already pending does as well. Whenever the
// inbox holds something, a wake-up is pending or run has not taken its
// last one yet (it takes the inbox after receiving one).
func (b *inbox[T]) notify() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take returns everything in the inbox, oldest first, and gives it arr and
// res (the slices of the previous take, which run is done with) to fill
// next, so that taking allocates nothing once the slices have grown.
func (b *inbox[T]) take(arr []arrival[T], res []result) ([]arrival[T], []result) {
	clear(arr) // let the events go
	clear(res)
	b.mu.Lock()
	arr, b.arrivals = b.arrivals, arr[:0]
	res, b.results = b.results, res[:0]
	b.mu.Unlock()
	return arr, res
}

// jobQueue hands events to the workers, oldest first. run puts every
// event whose turn it is; an idle worker takes the oldest, and a worker
// that finished one takes the next without waiting to be woken.
type jobQueue[T any] struct {
	mu      sync.Mutex
	filled  sync.Cond // on mu: jobs were put, or the queue was closed
	jobs    []job[T]  // jobs[head:] wait for a worker
	head    int
	waiting int  // workers waiting in get
	halted  bool // a worker's report stops Process: start no new job
	closed  bool
}

func newJobQueue[T any]() *jobQueue[T] {
	q := &jobQueue[T]{}
	q.filled.L = &q.mu
	return q
}

// compactLocked moves the waiting jobs to the front of jobs once the taken
// ones outnumber them (O(1) amortised per job); mu is held.
func (q *jobQueue[T]) compactLocked() {
	if live := len(q.jobs) - q.head; q.head > 0 && q.head >= live {
		k := copy(q.jobs, q.jobs[q.head:])
		clear(q.jobs[k:])
		q.jobs, q.head = q.jobs[:k], 0
	}
}

// wakeLocked wakes up to n waiting workers, for n jobs put; mu is held.
func (q *jobQueue[T]) wakeLocked(n int) {
	for range min(n, q.waiting) {
		q.filled.Signal()
	}
}

// get returns the oldest job, waiting for one; ok is false once the queue
// is closed. start is false after halt: the job must not start.
func (q *jobQueue[T]) get() (j job[T], start, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.jobs) && !q.closed {
		q.waiting++
		q.filled.Wait()
		q.waiting--
	}
	if q.head == len(q.jobs) {
		return job[T]{}, false, false
	}
	j = q.jobs[q.head]
	q.jobs[q.head] = job[T]{}
	if q.head++; q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
	return j, !q.halted, true
}

// halt is called by a worker whose report will stop Process, before it
// reports: from then on no job starts, even before run has seen the
// report and closed stop.
func (q *jobQueue[T]) halt() {
	q.mu.Lock()
	q.halted = true
	q.mu.Unlock()
}

// close ends the workers' loops and drops the jobs no worker took: it
// returns how many.
func (q *jobQueue[T]) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.jobs) - q.head
	clear(q.jobs)
	q.jobs, q.head, q.closed = q.jobs[:0], 0, true
	q.filled.Broadcast()
	return n
}
