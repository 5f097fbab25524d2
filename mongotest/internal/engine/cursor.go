package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// cursor is an open server cursor: a change stream (a view over the change
// log) or the rest of a find result.
type cursor struct {
	id   int64
	ns   string // the ns the cursor replies carry
	db   string
	coll string // the collection getMore must name

	stream *streamState        // change-stream cursors
	docs   []bsoncore.Document // find cursors: documents not yet returned

	// session is the lsid id of the session that opened the cursor ("" for
	// none): as on a real server, only that session may continue it.
	session string

	busy   bool // a getMore is running on it
	killed bool
	// interrupted: killCursors killed it while a getMore ran on it, which
	// then fails with CursorKilled, as on a real server.
	interrupted bool
	lastUsed    time.Time // when it was opened or its last getMore ended
	// prev and next link the cursor into Engine.idle while it is open and
	// not busy (inIdle).
	prev, next *cursor
	inIdle     bool
}

// idleList is the list of idle cursors, least recently used first. Its
// links live in the cursors, so that a getMore allocates nothing to leave
// and rejoin it. Its zero value is empty.
type idleList struct{ head, tail *cursor }

func (l *idleList) pushBack(c *cursor) {
	c.prev, c.next, c.inIdle = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *idleList) remove(c *cursor) {
	if !c.inIdle {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next, c.inIdle = nil, nil, false
}

// Cursor is a cursor a getMore checked out: until Release, no other
// getMore can use it and it does not time out.
type Cursor struct{ c *cursor }

// IsStream reports whether the cursor is a change stream.
func (c Cursor) IsStream() bool { return c.c.stream != nil }

// reapIdleLocked kills the cursors left unused for longer than the cursor
// timeout. The idle list is in the order the cursors were last used, so
// it examines the expired cursors and one more.
func (e *Engine) reapIdleLocked() {
	if e.cursorTimeout < 0 {
		return
	}
	now := e.now()
	for c := e.idle.head; c != nil; c = e.idle.head {
		e.cursorVisits++
		if now.Sub(c.lastUsed) <= e.cursorTimeout {
			return
		}
		e.closeCursorLocked(c)
	}
}

// registerCursorLocked gives c a new id and records it. Ids are random
// positive 63-bit numbers, as on a real server: a client cannot guess
// another client's cursor from its own.
func (e *Engine) registerCursorLocked(c *cursor) {
	e.reapIdleLocked()
	c.lastUsed = e.now()
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := int64(binary.BigEndian.Uint64(b[:]) >> 1)
		if _, taken := e.cursors[id]; id != 0 && !taken {
			c.id = id
			break
		}
	}
	e.cursors[c.id] = c
	e.idle.pushBack(c)
}

func (e *Engine) closeCursorLocked(c *cursor) {
	c.killed = true
	delete(e.cursors, c.id)
	e.idle.remove(c)
}

// Checkout finds cursor id for a getMore on db.coll, sent in the session
// session ("" for none), and marks it busy. It fails with CursorNotFound
// when there is no such cursor, Unauthorized when it belongs to another
// namespace, the codes of a real server (50736, 50737, 50738) when it
// belongs to another session, and OperationFailed when another getMore
// is using it.
func (e *Engine) Checkout(id int64, db, coll, session string) (Cursor, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reapIdleLocked()
	c := e.cursors[id]
	if c == nil || c.killed {
		return Cursor{}, codes.Errorf(codes.CursorNotFound, "cursor id %d not found", id)
	}
	if c.db != db || c.coll != coll {
		return Cursor{}, codes.Errorf(codes.Unauthorized, "Requested getMore on namespace '%s.%s', but cursor belongs to a different namespace %s", db, coll, c.db+"."+c.coll)
	}
	switch {
	case c.session == "" && session != "":
		return Cursor{}, codes.Errorf(50736, "Cannot run getMore on cursor %d, which was not created in a session, in session %s", id, sessionString(session))
	case c.session != "" && session == "":
		return Cursor{}, codes.Errorf(50737, "Cannot run getMore on cursor %d, which was created in session %s, without an lsid", id, sessionString(c.session))
	case c.session != session:
		return Cursor{}, codes.Errorf(50738, "Cannot run getMore on cursor %d, which was created in session %s, in session %s", id, sessionString(c.session), sessionString(session))
	}
	if c.busy {
		return Cursor{}, codes.Errorf(codes.OperationFailed, "cursor id %d is already in use", id)
	}
	c.busy = true
	e.idle.remove(c)
	return Cursor{c}, nil
}

// Release ends a checkout: the cursor's idle time starts again.
func (e *Engine) Release(cur Cursor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := cur.c
	c.busy = false
	c.lastUsed = e.now()
	if !c.killed && e.cursors[c.id] == c { // still open: not killed, no Shutdown
		e.idle.pushBack(c)
	}
}

// Kill destroys a checked-out cursor, as a getMore that fails after
// checkout does on a real server.
func (e *Engine) Kill(cur Cursor) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeCursorLocked(cur.c)
}

// NextDocs returns the reply {cursor: {id, ns, nextBatch}} with the next
// batchSize documents (0: all) of a find cursor; the last batch reports
// id 0 and closes the cursor.
func (e *Engine) NextDocs(cur Cursor, batchSize int) bsoncore.Document {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := cur.c
	out := c.docs
	if batchSize > 0 && len(out) > batchSize {
		out, c.docs = out[:batchSize], out[batchSize:]
	} else {
		c.docs = nil
	}
	id := c.id
	if len(c.docs) == 0 {
		id = 0
		e.closeCursorLocked(c)
	}
	return CursorReply(id, c.ns, "nextBatch", out)
}

// NextEvents appends the fields of a getMore reply on a change-stream
// cursor, {cursor: {id, ns, nextBatch, postBatchResumeToken}}, to out, an
// opened reply document. batchSize bounds the events (0: only the 16 MiB
// bound). With no event to return it waits up to await for one; an empty
// batch after that is the answer. It fails with CursorKilled when
// killCursors killed the cursor meanwhile, CursorNotFound when something
// else did (a session's end, a drop), InterruptedAtShutdown at Shutdown,
// and ctx's error when ctx ends first.
func (e *Engine) NextEvents(ctx context.Context, cur Cursor, out []byte, batchSize int, await time.Duration) ([]byte, error) {
	c := cur.c
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	limit := batchSize
	if limit == 0 {
		limit = -1
	}
	start := len(out)
	for {
		e.mu.Lock()
		if c.killed {
			e.mu.Unlock()
			if c.interrupted {
				// A real server interrupts the getMore of a cursor that
				// killCursors kills: the client's connection stays usable.
				return nil, codes.Errorf(codes.CursorKilled, "operation was interrupted")
			}
			return nil, codes.Errorf(codes.CursorNotFound, "cursor id %d not found", c.id)
		}
		reply, n, err := e.appendStreamReplyLocked(out[:start], c, "nextBatch", limit)
		if err != nil {
			e.closeCursorLocked(c)
			e.mu.Unlock()
			return nil, err
		}
		if n > 0 || c.killed || await == 0 {
			e.mu.Unlock()
			return reply, nil
		}
		out = reply // keep the capacity for the next attempt
		wake := e.log.wake
		done := e.done
		e.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(await)
		}
		select {
		case <-wake:
		case <-timer.C:
			await = 0
		case <-done:
			return nil, codes.Errorf(codes.InterruptedAtShutdown, "interrupted at shutdown")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// OpenDocCursor answers a find or an aggregate on db.coll, sent in the
// session session ("" for none), with docs: the
// reply {cursor: {id, ns, firstBatch}} holds the first batchSize of them
// (0: none), and a cursor keeps the rest for getMore, unless single asks
// for one batch only.
func (e *Engine) OpenDocCursor(db, coll, session string, docs []bsoncore.Document, batchSize int64, single bool) bsoncore.Document {
	cur := &cursor{ns: db + "." + coll, db: db, coll: coll, session: session}
	first := docs
	if batchSize > 0 && int64(len(docs)) > batchSize {
		first, cur.docs = docs[:batchSize], docs[batchSize:]
	} else if batchSize == 0 && !single {
		first, cur.docs = nil, docs
	}
	if len(cur.docs) == 0 || single {
		return CursorReply(0, cur.ns, "firstBatch", first)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.registerCursorLocked(cur)
	return CursorReply(cur.id, cur.ns, "firstBatch", first)
}

// CursorReply builds {cursor: {id, ns, <batchKey>: docs}}.
func CursorReply(id int64, ns, batchKey string, docs []bsoncore.Document) bsoncore.Document {
	size := 128
	for _, d := range docs {
		size += len(d) + 8
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, size))
	cidx, out := bsoncore.AppendDocumentElementStart(out, "cursor")
	out = bsoncore.AppendInt64Element(out, "id", id)
	out = bsoncore.AppendStringElement(out, "ns", ns)
	aidx, out := bsoncore.AppendArrayElementStart(out, batchKey)
	for i, d := range docs {
		out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), d)
	}
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	out, _ = bsoncore.AppendDocumentEnd(out, cidx)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// KillCursors kills the cursors ids names and wakes the getMores waiting
// on them. It returns the ids it killed and those it did not find.
func (e *Engine) KillCursors(ids []int64) (killed, notFound []int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		if c := e.cursors[id]; c != nil {
			c.interrupted = c.busy
			e.closeCursorLocked(c)
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	e.log.wakeLocked() // end getMores waiting on killed cursors
	return killed, notFound
}

// OpenCursors returns how many cursors are open: change streams and
// unfinished find results.
func (e *Engine) OpenCursors() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reapIdleLocked()
	return len(e.cursors)
}

// sessionString formats a session's lsid id (16 bytes) as a UUID, as a
// real server names sessions in its messages.
func sessionString(id string) string {
	b := []byte(id)
	if len(b) != 16 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// KillAllSessions ends every session, as killAllSessions does on a real
// server: their transactions are aborted and the cursors opened in a
// session are killed.
func (e *Engine) KillAllSessions() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.endTransactionsLocked(nil)
	for _, c := range e.cursors {
		if c.session != "" {
			e.closeCursorLocked(c)
		}
	}
	e.log.wakeLocked()
}
