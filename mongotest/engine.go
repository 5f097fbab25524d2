package mongotest

import (
	"crypto/rand"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// engine holds the data, the change log and the cursors. One mutex guards
// all of it: mongotest favours obviously-correct over concurrent.
type engine struct {
	mu    sync.Mutex
	dbs   map[string]*database
	clock bson.Timestamp
	log   changeLog
	// cursors are the open cursors. As on a real server a cursor belongs
	// to no connection: it stays open when the connection that created it
	// closes, and the driver may continue it on another connection of its
	// pool (it does so after a pool clear). A cursor ends when it is
	// exhausted or invalidated, by killCursors (which the driver sends when
	// a change stream is closed and before it resumes after an error), by
	// Restart, or by Close. So OpenCursors counts the streams that some
	// consumer has not closed, or that were left unused for longer than
	// cursorTimeout (reaped lazily, when cursors are opened, used or
	// counted).
	cursors map[int64]*cursor
	// cursorTimeout is Options.CursorTimeout; negative: never.
	cursorTimeout time.Duration
	// now is the clock of cursor timeouts (a test may replace it).
	now     func() time.Time
	lastCID int64
	// Lock order: e.mu before Server.mu when both are held (Restart).
	closed bool
	// done is closed by shutdown, waking every waiting getMore.
	done chan struct{}
	// retries remembers the replies of retryable writes (retry.go). It
	// has its own lock and, like the data, survives Restart.
	retries retryTable
}

func newEngine(historyLimit int) *engine {
	return &engine{
		dbs:     make(map[string]*database),
		clock:   bson.Timestamp{T: uint32(time.Now().Unix()), I: 1},
		log:     newChangeLog(historyLimit),
		cursors: make(map[int64]*cursor),
		done:    make(chan struct{}),
		now:     time.Now,
	}
}

// clusterTime returns the time of the latest write.
func (e *engine) clusterTime() bson.Timestamp {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

// tickLocked advances the cluster clock and returns the new time. Times are
// strictly increasing: the seconds follow the wall clock, the increment
// counts writes within one second.
func (e *engine) tickLocked() bson.Timestamp {
	now := uint32(time.Now().Unix())
	if now > e.clock.T {
		e.clock = bson.Timestamp{T: now, I: 1}
	} else {
		e.clock.I++
	}
	return e.clock
}

func (e *engine) shutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.done)
	}
	e.cursors = make(map[int64]*cursor)
}

// killAllCursorsLocked drops every open cursor, as a restart does.
func (e *engine) killAllCursorsLocked() {
	for id, c := range e.cursors {
		c.killed = true
		delete(e.cursors, id)
	}
	e.log.wakeLocked()
}

func (e *engine) truncateHistory() {
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
func (e *engine) dbLocked(name string, create bool) *database {
	d := e.dbs[name]
	if d == nil && create {
		d = &database{name: name, colls: make(map[string]*collection)}
		e.dbs[name] = d
	}
	return d
}

// collLocked returns db.name, or nil.
func (e *engine) collLocked(db, name string) *collection {
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
