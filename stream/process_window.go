package stream

// This file holds the bookkeeping of Process: the window of events taken
// from the stream and not yet committed, and the queues that order them.
// Both are owned by Process's coordinating goroutine; nothing else reads
// or writes them.

// processEvent is one event in Process's window.
type processEvent[T any] struct {
	val T
	tok Token // the position to commit once this event and all before it completed
	raw []byte
	at  documentKeyAt // where raw's default key is, when the stream found it
	// key orders the event among the others: the hash of its ordering key
	// (keyHasher). userKey is the key ProcessOptions.Key returned, for a
	// HandlerError; "" with the default key, which fail builds from raw.
	key     uint64
	userKey string
	// barrier: the event has no key (DDL, invalidate, an event that did
	// not decode); it runs alone, after everything before it.
	barrier   bool
	decodeErr error // the *DecodeError of an event that did not decode into T
	next      int64 // seq of the next event of the same key, 0 for none
	done      bool  // its handler completed (or DeadLetter took it)
	// more: when it was taken, the stream had the next event in memory
	// (delivery.more), so taking the next one will not wait for the server.
	more bool
	// order numbers the events intake took, from 1, whoever handles them
	// (commitGate).
	order int64
	// failed counts the attempts that failed before the event reached a
	// worker (intake's, see intake), the last with lastErr.
	failed  int
	lastErr error
}

// window is a ring of the events from the oldest one not committed (seq
// base) to the newest taken (seq top-1). Sequence numbers start at 1.
type window[T any] struct {
	ring []processEvent[T]
	base int64
	top  int64
}

func newWindow[T any](size int) window[T] {
	return window[T]{ring: make([]processEvent[T], size), base: 1, top: 1}
}

// full reports whether the window holds as many events as it can.
func (w *window[T]) full() bool { return w.top-w.base >= int64(len(w.ring)) }

// len returns the number of events in the window.
func (w *window[T]) len() int { return int(w.top - w.base) }

// add appends ev, which must fit, and returns its sequence number.
func (w *window[T]) add(ev processEvent[T]) int64 {
	seq := w.top
	w.ring[seq%int64(len(w.ring))] = ev
	w.top++
	return seq
}

// at returns the event seq, which must be in the window.
func (w *window[T]) at(seq int64) *processEvent[T] {
	return &w.ring[seq%int64(len(w.ring))]
}

// advance drops the completed events at the start of the window, the
// low-water mark moving past them. It returns how many it dropped and the
// token and order of the last, the newest position such that it and every
// event before it completed.
func (w *window[T]) advance() (n int, tok Token, order int64) {
	for w.base < w.top {
		ev := w.at(w.base)
		if !ev.done {
			break
		}
		tok, order = ev.tok, ev.order
		*ev = processEvent[T]{} // let the event's memory go
		w.base++
		n++
	}
	return n, tok, order
}

// seqQueue is a FIFO of sequence numbers with a fixed capacity.
type seqQueue struct {
	ring        []int64
	head, count int
}

func newSeqQueue(size int) seqQueue { return seqQueue{ring: make([]int64, size)} }

func (q *seqQueue) len() int { return q.count }

// push appends seq; the queue must not be full.
func (q *seqQueue) push(seq int64) {
	q.ring[(q.head+q.count)%len(q.ring)] = seq
	q.count++
}

// peek returns the first seq; the queue must not be empty.
func (q *seqQueue) peek() int64 { return q.ring[q.head] }

// pop removes and returns the first seq; the queue must not be empty.
func (q *seqQueue) pop() int64 {
	seq := q.ring[q.head]
	q.head = (q.head + 1) % len(q.ring)
	q.count--
	return seq
}
