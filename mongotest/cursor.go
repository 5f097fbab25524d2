package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func init() {
	register(handleGetMore, "getMore")
	register(handleKillCursors, "killCursors")
}

// cursor is an open server cursor: a change stream (a view over the change
// log) or the rest of a find result.
type cursor struct {
	id     int64
	ns     string // the ns the cursor replies carry
	db     string
	coll   string // the collection getMore must name
	connID int64

	stream *streamState        // change-stream cursors
	docs   []bsoncore.Document // find cursors: documents not yet returned

	busy     bool // a getMore is running on it
	killed   bool
	lastUsed time.Time // when it was opened or its last getMore ended
}

const (
	defaultAwait         = time.Second
	defaultCursorTimeout = 10 * time.Minute
)

// reapIdleLocked kills the cursors left unused for longer than the cursor
// timeout.
func (e *engine) reapIdleLocked() {
	if e.cursorTimeout < 0 {
		return
	}
	now := e.now()
	for _, c := range e.cursors {
		if !c.busy && now.Sub(c.lastUsed) > e.cursorTimeout {
			e.closeCursorLocked(c)
		}
	}
}

// registerCursorLocked gives c a new id and records it.
func (e *engine) registerCursorLocked(c *cursor) {
	e.reapIdleLocked()
	c.lastUsed = e.now()
	e.lastCID++
	// Cursor ids look random on a real server; keep them positive and large.
	c.id = e.lastCID*1_000_003 + 7_000_000_000
	e.cursors[c.id] = c
}

func handleGetMore(s *Server, r *request) (bsoncore.Document, error) {
	v := r.arg(r.name)
	id, ok := v.Int64OK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "Field 'getMore' must be of type long in: %s", v.Type)
	}
	coll, ok := r.arg("collection").StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "getMore requires a 'collection' string")
	}
	batchSize := int64(0)
	if bv := r.arg("batchSize"); bv.Type != 0 {
		n, ok := bsonutil.AsInt64(bv)
		if !ok || n < 0 {
			return nil, codes.Errorf(codes.BadValue, "batchSize must be a non-negative number")
		}
		batchSize = n
	}
	await := defaultAwait
	if mv := r.arg("maxTimeMS"); mv.Type != 0 {
		n, ok := bsonutil.AsInt64(mv)
		if !ok || n < 0 {
			return nil, codes.Errorf(codes.BadValue, "maxTimeMS must be a non-negative number")
		}
		await = time.Duration(n) * time.Millisecond
	}

	e := s.db
	e.mu.Lock()
	e.reapIdleLocked()
	c := e.cursors[id]
	if c == nil || c.killed {
		e.mu.Unlock()
		return nil, codes.Errorf(codes.CursorNotFound, "cursor id %d not found", id)
	}
	if c.db != r.db || c.coll != coll {
		e.mu.Unlock()
		return nil, codes.Errorf(codes.Unauthorized, "Requested getMore on namespace '%s.%s', but cursor belongs to a different namespace %s", r.db, coll, c.db+"."+c.coll)
	}
	if c.busy {
		e.mu.Unlock()
		return nil, codes.Errorf(codes.OperationFailed, "cursor id %d is already in use", id)
	}
	c.busy = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		c.busy = false
		c.lastUsed = e.now()
		e.mu.Unlock()
	}()

	if act := s.fp.matchAfterCheckout(r.c.appName, "getMore", c.stream != nil); act != nil {
		if act.blockFor > 0 {
			t := time.NewTimer(act.blockFor)
			select {
			case <-t.C:
			case <-r.c.ctx.Done():
				t.Stop()
				return nil, errConnClosed
			}
		}
		if act.closeConn {
			return nil, errConnClosed
		}
		if act.err != nil {
			// A getMore that fails after checkout destroys its cursor, as
			// on a real server.
			e.mu.Lock()
			e.closeCursorLocked(c)
			e.mu.Unlock()
			return nil, act.err
		}
	}

	if c.stream == nil {
		return e.findGetMore(c, int(batchSize))
	}
	return e.streamGetMore(r, c, int(batchSize), await)
}

// streamGetMore returns the next events, waiting up to await for one.
func (e *engine) streamGetMore(r *request, c *cursor, batchSize int, await time.Duration) (bsoncore.Document, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// batchSize 0 or absent: no count limit, only the 16 MiB bound.
	limit := batchSize
	if limit == 0 {
		limit = -1
	}
	for {
		e.mu.Lock()
		if c.killed {
			e.mu.Unlock()
			return nil, codes.Errorf(codes.CursorNotFound, "cursor id %d not found", c.id)
		}
		out, n, err := e.appendStreamReplyLocked(r.startReply(), c, "nextBatch", limit)
		if err != nil {
			e.closeCursorLocked(c)
			e.mu.Unlock()
			return nil, err
		}
		if n > 0 || c.killed || await == 0 {
			e.mu.Unlock()
			return r.finishReply(out)
		}
		r.keepReplyBuf(out)
		wake := e.log.wake
		done := e.done
		e.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(await)
		}
		select {
		case <-wake:
			continue
		case <-timer.C:
			await = 0
			continue
		case <-done:
			return nil, codes.Errorf(codes.InterruptedAtShutdown, "interrupted at shutdown")
		case <-r.c.ctx.Done():
			return nil, errConnClosed
		}
	}
}

// cursorReplyLocked builds {cursor: {id, ns, <batchKey>: […], postBatchResumeToken}}.
// An ended stream reports cursor id 0 and is removed.
func (e *engine) cursorReplyLocked(c *cursor, batchKey string, b batch) bsoncore.Document {
	size := 128
	for _, ev := range b.events {
		size += len(ev) + 8
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, size))
	cidx, out := bsoncore.AppendDocumentElementStart(out, "cursor")
	id := c.id
	if b.ended {
		id = 0
		e.closeCursorLocked(c)
	}
	out = bsoncore.AppendInt64Element(out, "id", id)
	out = bsoncore.AppendStringElement(out, "ns", c.ns)
	aidx, out := bsoncore.AppendArrayElementStart(out, batchKey)
	for i, ev := range b.events {
		out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), ev)
	}
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	if c.stream != nil {
		out = b.pbrt.appendTo(out, "postBatchResumeToken")
	}
	out, _ = bsoncore.AppendDocumentEnd(out, cidx)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func (e *engine) closeCursorLocked(c *cursor) {
	c.killed = true
	delete(e.cursors, c.id)
}

func handleKillCursors(s *Server, r *request) (bsoncore.Document, error) {
	ids, ok := r.arg("cursors").ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "killCursors requires a 'cursors' array")
	}
	vals, err := ids.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "killCursors: %v", err)
	}
	var killed, notFound bson.A
	e := s.db
	e.mu.Lock()
	for _, v := range vals {
		id, ok := v.Int64OK()
		if !ok {
			e.mu.Unlock()
			return nil, codes.Errorf(codes.TypeMismatch, "killCursors: cursor ids must be longs")
		}
		if c := e.cursors[id]; c != nil {
			e.closeCursorLocked(c)
			killed = append(killed, id)
		} else {
			notFound = append(notFound, id)
		}
	}
	e.log.wakeLocked() // end getMores waiting on killed cursors
	e.mu.Unlock()
	return marshal(bson.D{
		{Key: "cursorsKilled", Value: nonNil(killed)},
		{Key: "cursorsNotFound", Value: nonNil(notFound)},
		{Key: "cursorsAlive", Value: bson.A{}},
		{Key: "cursorsUnknown", Value: bson.A{}},
	})
}

func nonNil(a bson.A) bson.A {
	if a == nil {
		return bson.A{}
	}
	return a
}

// OpenCursors returns how many cursors are open on the server: change
// streams and unfinished find results. A test can check that a consumer
// closed its stream.
func (s *Server) OpenCursors() int {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.db.reapIdleLocked()
	return len(s.db.cursors)
}
