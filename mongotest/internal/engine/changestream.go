package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/query"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Scope is what a change stream watches.
type Scope int

// Change-stream scopes.
const (
	ScopeCollection Scope = iota // one collection: {aggregate: "coll"}
	ScopeDatabase                // one database: {aggregate: 1}
	ScopeCluster                 // every database: allChangesForCluster on admin
)

// StreamSpec is a parsed $changeStream aggregate: what a cursor watches,
// how it renders events and where it starts.
type StreamSpec struct {
	Scope                    Scope
	DB, Coll                 string
	FullDocument             string // default, updateLookup, whenAvailable, required
	FullDocumentBeforeChange string // off, whenAvailable, required
	ShowExpanded             bool
	Stages                   []query.Stage // stages after $changeStream, split stage excluded
	Split                    bool          // $changeStreamSplitLargeEvent is the last stage

	// Start is where the stream starts: "" (now), "resumeAfter" or
	// "startAfter" (after Token), or "startAtOperationTime" (at
	// StartAtOperationTime).
	Start                string
	Token                Token
	StartAtOperationTime bson.Timestamp

	// Session is the lsid id of the aggregate's session ("" for none):
	// only that session may continue the cursor.
	Session string
}

// streamState is a change-stream cursor's position in the change log.
type streamState struct {
	spec StreamSpec
	pos  uint64 // seq of the next entry to read
	// skipFragments, when non-zero, resumes the split event at seq pos after
	// that many fragments.
	skipFragments int
	// pending holds fragments of a split event not yet returned.
	pending []fragment
	// invalidate is the entry whose invalidate event is still owed.
	invalidate *entry
	ended      bool
	// lastEvent is the token of the last event returned.
	lastEvent    Token
	hasLastEvent bool
}

type fragment struct {
	doc bsoncore.Document
	tok Token
}

// batchWriter appends a change-stream batch's events, as the elements of
// the batch array, straight into the reply being built: an event is
// rendered once, into the bytes the connection writes.
type batchWriter struct {
	out  []byte
	n    int // events written
	size int // their total size
	// limit is the most events the batch may hold; negative: no count
	// limit (the 16 MiB bound still applies).
	limit int
	// scratch is where events are rendered when stages follow
	// $changeStream and so may change or drop them.
	scratch []byte
}

func (w *batchWriter) full() bool { return w.limit >= 0 && w.n >= w.limit }

// fits tells whether an event of n bytes fits in the batch. The first
// event always does: a larger one is split or refused before.
func (w *batchWriter) fits(n int) bool { return w.n == 0 || w.size+n <= bsonutil.MaxObjectSize }

// add copies doc into the batch, or reports that it does not fit.
func (w *batchWriter) add(doc bsoncore.Document) bool {
	if !w.fits(len(doc)) {
		return false
	}
	w.out = bsonutil.AppendArrayDocHeader(w.out, w.n)
	w.out = append(w.out, doc...)
	w.n++
	w.size += len(doc)
	return true
}

// readBatchLocked appends to w the events from the cursor's position,
// without waiting, until w.limit events, the 16 MiB bound, the end of the
// log or an invalidate. It returns the postBatchResumeToken and whether
// the stream ended.
func (e *Engine) readBatchLocked(c *cursor, w *batchWriter) (pbrt Token, ended bool, err error) {
	st := c.stream
	added := func(tok Token) { st.lastEvent, st.hasLastEvent = tok, true }
	for !w.full() {
		if len(st.pending) > 0 {
			if !w.add(st.pending[0].doc) {
				break
			}
			added(st.pending[0].tok)
			st.pending = st.pending[1:]
			continue
		}
		if st.invalidate != nil {
			tok := Token{time: st.invalidate.time, txnOp: st.invalidate.txnOp, fragment: wholeEvent, kind: kindInvalidate}
			if !w.add(renderInvalidate(st.invalidate, tok)) {
				break
			}
			added(tok)
			st.invalidate = nil
			st.ended = true
			ended = true
			break
		}
		if st.pos < e.log.base {
			// The cursor fell behind the retained history: a real server
			// fails the getMore with CappedPositionLost, unlabelled; a
			// resume from the old token then gets ChangeStreamHistoryLost.
			return Token{}, false, codes.Errorf(codes.CappedPositionLost, "Executor error during getMore :: caused by :: CollectionScan died due to position in capped collection being deleted. Last seen record id: RecordId(%d)", st.pos)
		}
		en := e.log.at(st.pos)
		if en == nil {
			break // caught up
		}
		if !e.visibleLocked(st, en) {
			st.pos++
			continue
		}
		// Like a real server's, an event token names the collection (its
		// UUID), so that a token from elsewhere is not taken for this one.
		tok := Token{time: en.time, txnOp: en.txnOp, fragment: wholeEvent, kind: kindEvent, uuid: en.uuid, hasUUID: en.uuid != [16]byte{}}
		var doc bsoncore.Document
		mark := len(w.out)
		direct := len(st.spec.Stages) == 0
		if direct {
			// Render straight into the batch; undone below if it does
			// not belong there.
			w.out = bsonutil.AppendArrayDocHeader(w.out, w.n)
			start := len(w.out)
			w.out, err = e.appendEventLocked(w.out, st, en, tok)
			if err != nil {
				return Token{}, false, err
			}
			doc = w.out[start:]
		} else {
			w.scratch, err = e.appendEventLocked(w.scratch[:0], st, en, tok)
			if err != nil {
				return Token{}, false, err
			}
			if doc = w.scratch; len(doc) > 0 {
				if doc, err = runStages(st.spec.Stages, doc); err != nil {
					return Token{}, false, err
				}
			}
		}
		if len(doc) == 0 {
			// Nothing to show for this entry.
			w.out = w.out[:mark]
		} else if len(doc) > bsonutil.MaxObjectSize {
			if !st.spec.Split {
				return Token{}, false, codes.Errorf(codes.BSONObjectTooLarge, "Executor error during getMore :: caused by :: BSONObj size: %d (0x%X) is invalid. Size must be between 0 and 16793600(16MB) First element: _id: %s", len(doc), len(doc), tok.doc())
			}
			frags, err := splitEvent(doc, tok) // copies what it keeps
			if err != nil {
				return Token{}, false, err
			}
			w.out = w.out[:mark]
			skip := min(st.skipFragments, len(frags))
			st.skipFragments = 0
			st.pending = frags[skip:]
			st.pos++
			e.noteInvalidateLocked(st, en)
			continue
		} else if direct {
			if !w.fits(len(doc)) {
				w.out = w.out[:mark]
				break // no room in this batch: read the entry again next time
			}
			w.n++
			w.size += len(doc)
			added(tok)
		} else {
			if !w.add(doc) {
				break // no room in this batch: read the entry again next time
			}
			added(tok)
		}
		st.skipFragments = 0
		st.pos++
		e.noteInvalidateLocked(st, en)
	}
	// The batch stopped at an event when it is full; a batch asked to hold
	// no events stopped before reading any.
	return e.postBatchTokenLocked(st, w.full() && w.n > 0), ended, nil
}

// appendStreamReplyLocked appends the fields of a change-stream cursor
// reply, {cursor: {id, ns, <batchKey>: […], postBatchResumeToken}}, to
// out, with up to limit events (negative: no count limit). An ended
// stream reports cursor id 0 and is removed. It returns how many events
// the batch holds.
func (e *Engine) appendStreamReplyLocked(out []byte, c *cursor, batchKey string, limit int) ([]byte, int, error) {
	cidx, out := bsoncore.AppendDocumentElementStart(out, "cursor")
	idAt := len(out) + len("\x12id\x00")
	out = bsoncore.AppendInt64Element(out, "id", c.id)
	out = bsoncore.AppendStringElement(out, "ns", c.ns)
	aidx, out := bsoncore.AppendArrayElementStart(out, batchKey)
	w := batchWriter{out: out, limit: limit}
	pbrt, ended, err := e.readBatchLocked(c, &w)
	if err != nil {
		return w.out, 0, err
	}
	out, _ = bsoncore.AppendArrayEnd(w.out, aidx)
	out = pbrt.appendTo(out, "postBatchResumeToken")
	out, _ = bsoncore.AppendDocumentEnd(out, cidx)
	if ended {
		binary.LittleEndian.PutUint64(out[idAt:], 0)
		e.closeCursorLocked(c)
	}
	return out, w.n, nil
}

// postBatchTokenLocked is the token a client resumes from after this batch:
// the last event's token when the batch stopped at it, otherwise a
// high-water mark at the newest entry read.
func (e *Engine) postBatchTokenLocked(st *streamState, stoppedAtEvent bool) Token {
	if st.ended || len(st.pending) > 0 || stoppedAtEvent || st.invalidate != nil {
		return st.lastEvent
	}
	// Caught up with the log, or stopped before an entry that did not fit
	// (which may be in the middle of a transaction's writes).
	hw := position{e.clock, allOps}
	if st.pos < e.log.end() {
		if en := e.log.at(st.pos); en != nil {
			hw = en.pos().before()
		}
	}
	// The last event stands for a mark of its time (what lies between them
	// was read and not shown, so resuming after either gives the same
	// events): a caught-up stream reports its last event's token.
	if st.hasLastEvent && !tsLess(st.lastEvent.time, hw.time) {
		return st.lastEvent
	}
	return Token{time: hw.time, txnOp: hw.op, fragment: wholeEvent, kind: kindHighWater}
}

// visibleLocked tells whether an entry belongs to the stream's scope.
func (e *Engine) visibleLocked(st *streamState, en *entry) bool {
	sp := &st.spec
	if en.expanded && !sp.ShowExpanded {
		return false
	}
	switch sp.Scope {
	case ScopeCollection:
		if en.op == opDropDatabase {
			return en.db == sp.DB
		}
		if en.op == opRename && en.toDB == sp.DB && en.toColl == sp.Coll {
			return true // a rename onto the watched collection
		}
		return en.db == sp.DB && en.coll == sp.Coll
	case ScopeDatabase:
		return en.db == sp.DB && !isSystemColl(en.coll)
	default:
		return !IsInternalDB(en.db) && !isSystemColl(en.coll)
	}
}

func isSystemColl(name string) bool { return len(name) > 7 && name[:7] == "system." }

// noteInvalidateLocked records that en ends the stream: a drop or rename
// of the watched collection, or dropDatabase of the watched database.
func (e *Engine) noteInvalidateLocked(st *streamState, en *entry) {
	sp := &st.spec
	switch sp.Scope {
	case ScopeCollection:
		if en.op == opDrop || en.op == opRename || en.op == opDropDatabase {
			st.invalidate = en
		}
	case ScopeDatabase:
		if en.op == opDropDatabase {
			st.invalidate = en
		}
	}
}

// appendEventLocked appends the change event for en to dst, or nothing
// when the stream shows nothing for it (a dropDatabase seen by a
// collection stream only invalidates it). On error dst may hold part of
// the event.
func (e *Engine) appendEventLocked(dst []byte, st *streamState, en *entry, tok Token) ([]byte, error) {
	sp := &st.spec
	if sp.Scope == ScopeCollection && en.op == opDropDatabase {
		return dst, nil
	}
	idx, out := bsoncore.AppendDocumentStart(dst)
	out = tok.appendTo(out, "_id")
	out = bsoncore.AppendStringElement(out, "operationType", en.op)
	out = bsoncore.AppendTimestampElement(out, "clusterTime", en.time.T, en.time.I)
	out = bsoncore.AppendDateTimeElement(out, "wallTime", en.wall.UnixMilli())
	if sp.ShowExpanded && en.op != opDropDatabase {
		out = bsoncore.AppendBinaryElement(out, "collectionUUID", 4, en.uuid[:])
	}
	switch en.op {
	case opInsert, opReplace:
		out = bsoncore.AppendDocumentElement(out, "fullDocument", en.postImage)
	case opUpdate:
		var err error
		out, err = e.appendUpdateFullDocLocked(out, sp, en)
		if err != nil {
			return dst, err
		}
	}
	nidx, out := bsoncore.AppendDocumentElementStart(out, "ns")
	out = bsoncore.AppendStringElement(out, "db", en.db)
	if en.op != opDropDatabase {
		out = bsoncore.AppendStringElement(out, "coll", en.coll)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, nidx)
	switch en.op {
	case opInsert, opUpdate, opReplace, opDelete:
		out = bsoncore.AppendDocumentElement(out, "documentKey", en.docKey)
	case opRename:
		tidx, o := bsoncore.AppendDocumentElementStart(out, "to")
		o = bsoncore.AppendStringElement(o, "db", en.toDB)
		o = bsoncore.AppendStringElement(o, "coll", en.toColl)
		out, _ = bsoncore.AppendDocumentEnd(o, tidx)
	}
	if en.op == opUpdate {
		out = appendUpdateDesc(out, en, sp.ShowExpanded)
	}
	if en.lsid != nil {
		// A write of a transaction names its session and transaction.
		out = bsoncore.AppendDocumentElement(out, "lsid", en.lsid)
		out = bsoncore.AppendInt64Element(out, "txnNumber", en.txnNumber)
	}
	if sp.ShowExpanded && en.opDesc != nil {
		out = bsoncore.AppendDocumentElement(out, "operationDescription", en.opDesc)
	}
	if sp.ShowExpanded && en.stateBefore != nil {
		out = bsoncore.AppendDocumentElement(out, "stateBeforeChange", en.stateBefore)
	}
	if sp.ShowExpanded && en.nsType != "" {
		out = bsoncore.AppendStringElement(out, "nsType", en.nsType)
	}
	switch en.op {
	case opUpdate, opReplace, opDelete:
		switch sp.FullDocumentBeforeChange {
		case "whenAvailable":
			if en.imagesKept && en.preImage != nil {
				out = bsoncore.AppendDocumentElement(out, "fullDocumentBeforeChange", en.preImage)
			} else {
				out = bsoncore.AppendNullElement(out, "fullDocumentBeforeChange")
			}
		case "required":
			if !en.imagesKept || en.preImage == nil {
				return dst, noImage("pre", en)
			}
			out = bsoncore.AppendDocumentElement(out, "fullDocumentBeforeChange", en.preImage)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out, nil
}

func (e *Engine) appendUpdateFullDocLocked(out []byte, sp *StreamSpec, en *entry) ([]byte, error) {
	switch sp.FullDocument {
	case "updateLookup":
		if c := e.collLocked(en.db, en.coll); c != nil && c.uuid == en.uuid {
			if k, ok := bsonutil.DocKey(en.docKey); ok {
				if d, ok := c.get(k); ok {
					return bsoncore.AppendDocumentElement(out, "fullDocument", d), nil
				}
			}
		}
		return bsoncore.AppendNullElement(out, "fullDocument"), nil
	case "whenAvailable":
		if en.imagesKept && en.postImage != nil {
			return bsoncore.AppendDocumentElement(out, "fullDocument", en.postImage), nil
		}
		return bsoncore.AppendNullElement(out, "fullDocument"), nil
	case "required":
		if !en.imagesKept || en.postImage == nil {
			return nil, noImage("post", en)
		}
		return bsoncore.AppendDocumentElement(out, "fullDocument", en.postImage), nil
	}
	return out, nil
}

// noImage is the error of a real server (7.0+) when fullDocument or
// fullDocumentBeforeChange is "required" and the image was not recorded.
func noImage(which string, en *entry) error {
	events := "update, delete and replace events"
	if which == "post" {
		events = "update events"
	}
	return codes.Errorf(codes.NoMatchingDocument, "Change stream was configured to require a %s-image for all %s, but the %s-image was not found for event: {ts: Timestamp(%d, %d), ns: %s.%s}", which, events, which, en.time.T, en.time.I, en.db, en.coll)
}

// appendUpdateDesc appends the updateDescription, with disambiguatedPaths
// when expanded events are on and a path needs it.
func appendUpdateDesc(out []byte, en *entry, expanded bool) []byte {
	if !expanded || en.disambiguated == nil {
		return bsoncore.AppendDocumentElement(out, "updateDescription", en.updateDesc)
	}
	idx, out := bsoncore.AppendDocumentElementStart(out, "updateDescription")
	out = append(out, en.updateDesc[4:len(en.updateDesc)-1]...)
	out = bsoncore.AppendDocumentElement(out, "disambiguatedPaths", en.disambiguated)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func renderInvalidate(en *entry, tok Token) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = tok.appendTo(out, "_id")
	out = bsoncore.AppendStringElement(out, "operationType", opInvalidate)
	out = bsoncore.AppendTimestampElement(out, "clusterTime", en.time.T, en.time.I)
	out = bsoncore.AppendDateTimeElement(out, "wallTime", en.wall.UnixMilli())
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// splitEvent cuts an oversized event into fragments, as
// $changeStreamSplitLargeEvent does: each holds _id (the fragment's own
// token: whole with the fragment number), splitEvent {fragment, of} and as
// many of the remaining top-level fields as fit.
func splitEvent(doc bsoncore.Document, whole Token) ([]fragment, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	const overhead = 200 // _id, splitEvent and document framing
	var groups [][]bsoncore.Element
	var cur []bsoncore.Element
	size := overhead
	for _, el := range elems {
		if el.Key() == "_id" {
			continue
		}
		if overhead+len(el) > bsonutil.MaxObjectSize {
			return nil, codes.Errorf(codes.BSONObjectTooLarge, "BSONObj size: %d (0x%X) is invalid: field %q alone is larger than a split event fragment can hold", len(doc), len(doc), el.Key())
		}
		if size+len(el) > bsonutil.MaxObjectSize && len(cur) > 0 {
			groups = append(groups, cur)
			cur, size = nil, overhead
		}
		cur = append(cur, el)
		size += len(el)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	frags := make([]fragment, len(groups))
	for i, g := range groups {
		tok := whole
		tok.fragment = uint16(i + 1)
		if i == len(groups)-1 {
			// The last fragment carries the whole event's token, so resuming
			// from it continues with the next event.
			tok.fragment = wholeEvent
		}
		idx, out := bsoncore.AppendDocumentStart(nil)
		out = tok.appendTo(out, "_id")
		sidx, o := bsoncore.AppendDocumentElementStart(out, "splitEvent")
		o = bsoncore.AppendInt32Element(o, "fragment", int32(i+1))
		o = bsoncore.AppendInt32Element(o, "of", int32(len(groups)))
		out, _ = bsoncore.AppendDocumentEnd(o, sidx)
		for _, el := range g {
			out = append(out, el...)
		}
		out, _ = bsoncore.AppendDocumentEnd(out, idx)
		frags[i] = fragment{doc: out, tok: tok}
	}
	return frags, nil
}

// runStages applies the stages after $changeStream. A nil result means the
// event was filtered out. A stage that changes _id is fatal, as on a real
// server.
func runStages(stages []query.Stage, ev bsoncore.Document) (bsoncore.Document, error) {
	if len(stages) == 0 {
		return ev, nil
	}
	id := ev.Lookup("_id")
	out := ev
	for _, st := range stages {
		var err error
		out, err = st.Apply(out)
		if err != nil {
			return nil, err
		}
		if out == nil {
			return nil, nil
		}
	}
	if nid := out.Lookup("_id"); nid.Type != id.Type || !bytes.Equal(nid.Data, id.Data) {
		return nil, &codes.Error{
			Code:    codes.ChangeStreamFatalError,
			Message: "Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.",
			Labels:  []string{"NonResumableChangeStreamError"},
		}
	}
	return out, nil
}

// OpenChangeStream opens a change-stream cursor for spec and appends the
// fields of the aggregate's reply, {cursor: {id, ns, firstBatch,
// postBatchResumeToken}}, to out, an opened reply document, with up to
// batchSize events (0: an empty first batch, as on a real server). A
// resume point older than the retained history fails with
// ChangeStreamHistoryLost.
func (e *Engine) OpenChangeStream(spec StreamSpec, out []byte, batchSize int) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &streamState{spec: spec}
	switch spec.Start {
	case "":
		st.pos = e.log.end()
	case "startAtOperationTime":
		start := spec.StartAtOperationTime
		// A time before the server started is taken as its start (a real
		// server refuses one older than its oplog; the project's tests
		// start streams at {1, 0} to mean "from the beginning").
		if !tsLess(e.log.truncatedThrough.time, start) && e.log.base > 0 {
			return nil, historyLost(start)
		}
		// Every write of a transaction committed at start is at start.
		st.pos = e.log.firstAtOrAfter(position{start, 0})
	default:
		t := spec.Token
		if t.kind == kindInvalidate && spec.Start == "resumeAfter" {
			return nil, codes.Errorf(codes.InvalidResumeToken, "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.")
		}
		tp := t.pos()
		if tp.less(e.log.truncatedThrough) || tsLess(t.time, e.origin) {
			// A token older than the history: truncated, or from before
			// this server started (another server's, or a restored one).
			return nil, historyLost(t.time)
		}
		if t.kind == kindEvent && e.log.truncatedThrough.less(tp) {
			// An event token names an event of the history (or the newest
			// dropped one): one that is not there (a token from another
			// server, or from the future) cannot be resumed from, as on a
			// real server.
			if en := e.log.at(e.log.firstAtOrAfter(tp)); en == nil || en.pos() != tp || t.hasUUID && en.uuid != t.uuid {
				return nil, &codes.Error{
					Code:    codes.ChangeStreamFatalError,
					Message: fmt.Sprintf("cannot resume stream; the resume token was not found. {_data: \"%s\"}", t.data()),
					Labels:  []string{"NonResumableChangeStreamError"},
				}
			}
		}
		if t.kind == kindEvent && t.fragment != wholeEvent {
			// Resume inside a split event: the fragments after t.fragment.
			st.pos = e.log.firstAtOrAfter(tp)
			if en := e.log.at(st.pos); en != nil && en.pos() == tp {
				st.skipFragments = int(t.fragment)
			} else {
				st.pos = e.log.firstAfter(tp)
			}
		} else {
			st.pos = e.log.firstAfter(tp)
		}
	}
	c := &cursor{db: spec.DB, coll: spec.Coll, stream: st, session: spec.Session}
	switch spec.Scope {
	case ScopeCollection:
		c.ns = spec.DB + "." + spec.Coll
	default:
		c.ns = spec.DB + ".$cmd.aggregate"
		c.coll = "$cmd.aggregate"
	}
	e.registerCursorLocked(c)
	out, _, err := e.appendStreamReplyLocked(out, c, "firstBatch", batchSize)
	if err != nil {
		e.closeCursorLocked(c)
		return nil, err
	}
	return out, nil
}

func historyLost(t bson.Timestamp) error {
	return &codes.Error{
		Code:    codes.ChangeStreamHistoryLost,
		Message: fmt.Sprintf("Resume of change stream was not possible, as the resume point may no longer be in the oplog. (resume time {%d, %d})", t.T, t.I),
		Labels:  []string{"NonResumableChangeStreamError"},
	}
}

// IsInternalDB reports whether db is admin, config or local, which only a
// cluster-wide change stream may see.
func IsInternalDB(db string) bool { return db == "admin" || db == "config" || db == "local" }
