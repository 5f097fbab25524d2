package engine

import (
	"crypto/rand"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Engine holds the data, the change log and the cursors. One mutex guards
// all of it: mongotest favours obviously-correct over concurrent. Every
// exported method takes the mutex itself; no caller ever holds it.
type Engine struct {
	mu    sync.Mutex
	dbs   map[string]*database
	clock bson.Timestamp
	// origin is the cluster time the engine started at, where its history
	// begins: a resume point before it is older than the history.
	origin bson.Timestamp
	log    changeLog
	// cursors are the open cursors. As on a real server a cursor belongs
	// to no connection: it stays open when the connection that created it
	// closes, and the driver may continue it on another connection of its
	// pool (it does so after a pool clear). A cursor ends when it is
	// exhausted or invalidated, by killCursors (which the driver sends when
	// a change stream is closed and before it resumes after an error), by
	// Restart, or by Shutdown. So OpenCursors counts the streams that some
	// consumer has not closed, or that were left unused for longer than
	// cursorTimeout (reaped lazily, when cursors are opened, used or
	// counted).
	cursors map[int64]*cursor
	// idle holds the open cursors no getMore is using, least recently
	// used first, so that reaping expired ones does not scan the table.
	idle idleList
	// cursorTimeout is how long a cursor may stay unused; negative: never.
	cursorTimeout time.Duration
	// now is the clock of cursor timeouts (a test may replace it).
	now func() time.Time
	// cursorVisits counts the cursors the cursor operations examined, so
	// that a test can check they do not scan the table.
	cursorVisits int
	closed       bool
	// done is closed by Shutdown, waking every waiting getMore.
	done chan struct{}
	// lastWrite is when the clock last advanced (a write or a no-op).
	lastWrite time.Time
	// snapshots are copies of the data kept for snapshot reads
	// (transaction.go), oldest first.
	snapshots []snapshot
	// txns are the sessions' transactions (transaction.go), by lsid id.
	txns map[string]*txn
	// retries remembers the replies of retryable writes (retry.go). It
	// has its own lock and, like the data, survives Restart.
	retries retryTable
}

// DefaultCursorTimeout is a real server's cursorTimeoutMillis.
const DefaultCursorTimeout = 10 * time.Minute

// New returns an empty engine whose change log keeps at most historyLimit
// entries (0: all) and whose cursors time out after cursorTimeout unused
// (0: DefaultCursorTimeout; negative: never).
func New(historyLimit int, cursorTimeout time.Duration) *Engine {
	if cursorTimeout == 0 {
		cursorTimeout = DefaultCursorTimeout
	}
	start := bson.Timestamp{T: uint32(time.Now().Unix()), I: 1}
	return &Engine{
		dbs:           make(map[string]*database),
		clock:         start,
		origin:        start,
		lastWrite:     time.Now(),
		log:           newChangeLog(historyLimit),
		cursors:       make(map[int64]*cursor),
		txns:          make(map[string]*txn),
		cursorTimeout: cursorTimeout,
		done:          make(chan struct{}),
		now:           time.Now,
	}
}

// SetNow replaces the clock that cursor timeouts are measured with.
func (e *Engine) SetNow(now func() time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = now
}

// ClusterTime returns the time of the latest write.
func (e *Engine) ClusterTime() bson.Timestamp {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

// NoopIfIdle advances the cluster time, as a replica set's periodic no-op
// write does, when nothing was written for idle; getMores waiting on the
// change log see the new time in their postBatchResumeToken.
func (e *Engine) NoopIfIdle(idle time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.lastWrite) < idle {
		return
	}
	e.tickLocked()
	e.lastWrite = time.Now()
}

// tickLocked advances the cluster clock and returns the new time. Times are
// strictly increasing: the seconds follow the wall clock, the increment
// counts writes within one second.
func (e *Engine) tickLocked() bson.Timestamp {
	now := uint32(time.Now().Unix())
	if now > e.clock.T {
		e.clock = bson.Timestamp{T: now, I: 1}
	} else {
		e.clock.I++
	}
	return e.clock
}

// Shutdown ends every cursor and wakes every waiting getMore, which then
// fails with InterruptedAtShutdown.
func (e *Engine) Shutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.done)
	}
	e.cursors = make(map[int64]*cursor)
	for c := e.idle.head; c != nil; c = e.idle.head {
		e.idle.remove(c)
	}
}

// Restart kills every cursor, as a server restart does, and calls
// dropConnections while no command can run: no command sees the cursors
// gone and the connections still open. The data, the change log and the
// retry table are kept.
func (e *Engine) Restart(dropConnections func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.cursors {
		e.closeCursorLocked(c)
	}
	e.log.wakeLocked()
	dropConnections()
}

// TruncateHistory drops every change-log entry written so far.
func (e *Engine) TruncateHistory() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log.truncateLocked(len(e.log.entries))
}

// database is one database: its collections by name.
type database struct {
	name  string
	colls map[string]*collection
}

// dbLocked returns the database name, creating it when create is set.
func (e *Engine) dbLocked(name string, create bool) *database {
	d := e.dbs[name]
	if d == nil && create {
		d = &database{name: name, colls: make(map[string]*collection)}
		e.dbs[name] = d
	}
	return d
}

// collLocked returns db.name, or nil.
func (e *Engine) collLocked(db, name string) *collection {
	d := e.dbs[db]
	if d == nil {
		return nil
	}
	return d.colls[name]
}

func newUUID() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
