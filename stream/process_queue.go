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
}

func newInbox[T any](max int) *inbox[T] {
	return &inbox[T]{wake: make(chan struct{}, 1), room: make(chan struct{}, 1), max: max}
}

// acquire takes a slot for the next event, waiting while the window is
// full. It returns false, taking none, once stop is closed.
func (b *inbox[T]) acquire(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	default:
	}
	b.mu.Lock()
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
	b.mu.Unlock()
	if empty {
		b.notify()
	}
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
