package stream

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// decodeAhead decodes the events of the batch in hand ahead of their
// delivery, on other goroutines.
//
// When the stream is about to take an event from a batch that still holds
// several (no I/O: the driver has the batch in memory), fill takes all of
// them at once on the goroutine that owns the driver's stream, exactly as
// take would one by one: the same copies, split-event joins, _id checks
// and tokens, computed from the same driver state, but not decoded. Up to
// GOMAXPROCS-1 workers then decode them, claiming events in order; the
// stream's goroutine, when it needs an event no worker has claimed yet,
// decodes it itself. Events are handed out strictly in order, each once it
// is decoded, through the same await/deliver path as any other, so the
// position (and every checkpoint) moves only at delivery. An error that
// ends the stream (a broken split event, a missing _id) stops the fill and
// is handed out in its place; a driver error stops it too and is seen by
// the next fetch, after every event before it.
//
// Memory is bounded: the queue holds at most aheadMax events of the batch
// in hand, which the driver held anyway, and no fetch starts (nor does
// prefetch) until the queue is empty and the batch is consumed. The workers live as long as one batch; stop,
// called by Close, makes them quit and waits for them.
type decodeAhead[T any] struct {
	off  bool            // not Options.DecodeAhead
	no   bool            // decided at the first fill: it cannot help
	decs []*aheadDecoder // one per worker, kept across batches
	wg   sync.WaitGroup  // the workers of the current batch
	q    *aheadBatch[T]  // the current batch; nil before the first fill
	quit atomic.Bool     // set by stop
	head int             // the next event of q to hand out
	n    int             // events in q
}

// aheadBatch is a batch taken ahead: items, and the index of the next one
// nobody has claimed for decoding.
type aheadBatch[T any] struct {
	items   []fetched[T]
	state   []aheadItem
	next    atomic.Int64
	mu      sync.Mutex
	cond    sync.Cond
	waiting bool // the stream's goroutine waits on cond; mu
}

// aheadItem is the decode state of one item; mu of its batch guards it.
type aheadItem struct{ decoded bool }

// aheadDecoder is a worker's own decoder: the envelope's namespace memo and
// the compiled plan of the document type are per goroutine.
type aheadDecoder struct {
	env   envelopeDecoder
	codec codec
}

func (d *aheadDecoder) decodeDoc(doc []byte, v any) error {
	if d.codec.decodePlanned(doc, v) {
		return nil
	}
	return decodeWith(d.codec.reg, doc, v)
}

// aheadMax is the most events taken ahead at once. A getMore batch can
// hold thousands of small events (up to 16 MiB); the rest of the batch
// stays in the driver's buffer, undecoded, until the queue is empty.
const aheadMax = 256

// queued reports whether events taken ahead wait to be handed out.
func (a *decodeAhead[T]) queued() bool { return a.head < a.n }

// aheadWorkers returns how many goroutines may decode besides the stream's.
func aheadWorkers() int { return runtime.GOMAXPROCS(0) - 1 }

// nextAhead returns the next event taken ahead, decoded, filling the queue
// from the batch in hand first when it is empty. ok is false when there is
// none: the caller fetches as without decoding ahead. It runs on the
// goroutine that owns the driver's stream.
func (s *Stream[T]) nextAhead() (f fetched[T], ok bool) {
	a := &s.ahead
	if !a.queued() && !s.fillAhead() {
		return f, false
	}
	q, h := a.q, a.head
	a.head++
	if q.next.Load() == int64(h) && q.next.CompareAndSwap(int64(h), int64(h+1)) {
		// No worker got to it: decode it here.
		s.decodeItem(&q.items[h], &s.env)
	} else {
		q.mu.Lock()
		for !q.state[h].decoded {
			q.waiting = true
			q.cond.Wait()
		}
		q.waiting = false
		q.mu.Unlock()
	}
	f = q.items[h]
	q.items[h] = fetched[T]{} // the queue keeps no reference to a delivered event
	if !a.queued() {
		a.wg.Wait() // every item is decoded: the workers are leaving
	}
	return f, true
}

// decodeItem decodes the event of f in place, unless it carries an error
// that ends the stream.
func (s *Stream[T]) decodeItem(f *fetched[T], env *envelopeDecoder) {
	if f.got {
		f.val, f.err = decodeAs[T](s.kind, f.raw, f.id, env)
	}
}

// fillAhead takes the rest of the batch in hand into the queue and starts
// its workers. It reports false, taking nothing, when decoding ahead is
// off or cannot help: fewer than two events in hand, no other core, no
// decoding to do (bson.Raw), or a decoder only the stream's goroutine may
// use (the client's BSON options).
func (s *Stream[T]) fillAhead() bool {
	a := &s.ahead
	if a.off || a.no || s.cs == nil || s.cs.RemainingBatchLength() < 2 {
		return false
	}
	if a.decs == nil {
		if !s.codec.ready {
			s.codec = codecOf(s.cs)
		}
		nw := aheadWorkers()
		if s.kind == decodeRaw || s.codec.reg == nil || nw < 1 {
			a.no = true
			return false
		}
		for range nw {
			d := &aheadDecoder{codec: codec{ready: true, reg: s.codec.reg, planReg: s.codec.planReg}}
			d.env.decode = d.decodeDoc
			a.decs = append(a.decs, d)
		}
		a.q = &aheadBatch[T]{items: make([]fetched[T], 0, min(s.cs.RemainingBatchLength(), aheadMax))}
		a.q.cond.L = &a.q.mu
	}
	q := a.q
	q.items = q.items[:0]
	for len(q.items) < aheadMax && s.cs.RemainingBatchLength() > 0 {
		// As fetch does around each call of the driver's stream.
		if err := s.paceResumes(); err != nil {
			break // the next fetch gets it again and ends the stream
		}
		before, left := s.cs.ID(), s.cs.RemainingBatchLength()
		s.cursorID.Store(before)
		got := s.cs.TryNext(s.ictx)
		s.noteResume(before, got)
		s.noteBatch(got, left)
		if !got {
			break // a driver error: the next fetch sees it
		}
		f, whole := s.takeRaw()
		if !whole {
			continue // a fragment of a split event
		}
		q.items = append(q.items, f)
		if !f.got {
			break // it ends the stream
		}
	}
	a.head, a.n = 0, len(q.items)
	if cap(q.state) < a.n {
		q.state = make([]aheadItem, a.n)
	} else {
		q.state = q.state[:a.n]
		clear(q.state)
	}
	q.next.Store(0)
	if a.n == 0 {
		return false
	}
	for _, d := range a.decs[:min(len(a.decs), a.n-1)] {
		a.wg.Add(1)
		go s.decodeAheadWorker(q, d)
	}
	return true
}

// decodeAheadWorker decodes the items of q nobody claimed yet, in order,
// until none is left or the stream closes.
func (s *Stream[T]) decodeAheadWorker(q *aheadBatch[T], d *aheadDecoder) {
	defer s.ahead.wg.Done()
	n := int64(len(q.items))
	for !s.ahead.quit.Load() {
		i := q.next.Add(1) - 1
		if i >= n {
			return
		}
		s.decodeItem(&q.items[i], &d.env)
		q.mu.Lock()
		q.state[i].decoded = true
		if q.waiting {
			q.cond.Broadcast()
		}
		q.mu.Unlock()
	}
}

// stop makes the workers quit and waits for them. The events taken ahead
// and not handed out are dropped, as a batch the driver held would be.
func (a *decodeAhead[T]) stop() {
	a.quit.Store(true)
	a.wg.Wait()
	a.head, a.n = 0, 0
	if a.q != nil {
		clear(a.q.items)
	}
}
