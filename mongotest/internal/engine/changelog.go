package engine

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Operation types of change-log entries, as change events name them.
const (
	opInsert        = "insert"
	opUpdate        = "update"
	opReplace       = "replace"
	opDelete        = "delete"
	opDrop          = "drop"
	opRename        = "rename"
	opDropDatabase  = "dropDatabase"
	opInvalidate    = "invalidate"
	opCreate        = "create"
	opCreateIndexes = "createIndexes"
	opDropIndexes   = "dropIndexes"
	opModify        = "modify"
)

// entry is one write in the change log: the single source of truth that
// change-stream cursors read. Entries are immutable once appended.
type entry struct {
	time bson.Timestamp
	// txnOp is the entry's index among the writes of its transaction,
	// which all share the commit's time (0 outside a transaction), as the
	// operations of one applyOps oplog entry on a real server.
	txnOp uint32
	wall  time.Time
	op    string
	db    string
	coll  string // empty for dropDatabase
	uuid  [16]byte

	// expanded marks entries shown only with showExpandedEvents (create,
	// createIndexes, dropIndexes, modify).
	expanded bool

	docKey     bsoncore.Document // {_id: …} for document writes
	postImage  bsoncore.Document // the document after an insert, replace or update
	preImage   bsoncore.Document // the document before an update, replace or delete
	imagesKept bool              // the collection records pre- and post-images
	updateDesc bsoncore.Document // updateDescription of an update
	// paths with ambiguous components (numeric keys), for disambiguatedPaths.
	disambiguated bsoncore.Document

	toDB, toColl string            // rename target
	opDesc       bsoncore.Document // operationDescription of expanded events
	nsType       string            // "collection", "view" or "timeseries" for create
	stateBefore  bsoncore.Document // stateBeforeChange of a modify event

	// lsid and txnNumber name the transaction of a write committed in
	// one (lsid nil otherwise).
	lsid      bsoncore.Document
	txnNumber int64
}

// changeLog is the ordered list of entries. Entries below index 0 were
// truncated; seq numbers count from the first entry ever written.
type changeLog struct {
	entries []*entry
	base    uint64 // seq of entries[0]
	limit   int
	// truncatedThrough is the position of the newest dropped entry: a
	// resume point older than it has lost history.
	truncatedThrough position
	// wake is closed and replaced on every append, waking waiting getMores.
	wake chan struct{}
}

func newChangeLog(limit int) changeLog {
	return changeLog{limit: limit, wake: make(chan struct{})}
}

// end returns the seq the next entry will get.
func (l *changeLog) end() uint64 { return l.base + uint64(len(l.entries)) }

// at returns the entry with the given seq, or nil when it was truncated or
// not yet written.
func (l *changeLog) at(seq uint64) *entry {
	if seq < l.base || seq >= l.end() {
		return nil
	}
	return l.entries[seq-l.base]
}

// firstAfter returns the seq of the first entry whose position is after p.
func (l *changeLog) firstAfter(p position) uint64 {
	lo, hi := 0, len(l.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if !p.less(l.entries[m].pos()) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return l.base + uint64(lo)
}

// firstAtOrAfter returns the seq of the first entry whose position is p or
// later.
func (l *changeLog) firstAtOrAfter(p position) uint64 {
	lo, hi := 0, len(l.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if l.entries[m].pos().less(p) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return l.base + uint64(lo)
}

// appendLocked adds e (whose time is already set) and wakes waiters.
func (l *changeLog) appendLocked(e *entry) {
	l.entries = append(l.entries, e)
	if l.limit > 0 && len(l.entries) > l.limit {
		l.truncateLocked(len(l.entries) - l.limit)
	}
	l.wakeLocked()
}

func (l *changeLog) wakeLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// truncateLocked drops the n oldest entries.
func (l *changeLog) truncateLocked(n int) {
	if n <= 0 {
		return
	}
	l.truncatedThrough = l.entries[n-1].pos()
	// Copy so the dropped entries can be collected.
	rest := make([]*entry, len(l.entries)-n, max(len(l.entries)-n, 16))
	copy(rest, l.entries[n:])
	l.entries = rest
	l.base += uint64(n)
}

// appendEntryLocked stamps e with the next cluster time and logs it.
func (e *Engine) appendEntryLocked(en *entry) {
	en.time = e.tickLocked()
	en.wall = time.Now()
	e.lastWrite = en.wall
	e.log.appendLocked(en)
}

// appendTxnLocked logs the entries of a committed transaction as a real
// server's applyOps oplog entry: under one new cluster time (and wall
// time), told apart by their index in the transaction.
func (e *Engine) appendTxnLocked(ens []*entry) {
	if len(ens) == 0 {
		return // a read-only transaction writes nothing
	}
	t, wall := e.tickLocked(), time.Now()
	e.lastWrite = wall
	for i, en := range ens {
		en.time, en.txnOp, en.wall = t, uint32(i), wall
		e.log.appendLocked(en)
	}
}

// position orders the change log: by cluster time, then, among the
// writes of one transaction, by their index in it. Tokens sort the same
// way, so a token names the position of its event.
type position struct {
	time bson.Timestamp
	op   uint32
}

// allOps as the op of a position stands after every write at its time.
const allOps = ^uint32(0)

func (p position) less(q position) bool {
	return tsLess(p.time, q.time) || (p.time == q.time && p.op < q.op)
}

// before returns the latest position before p: the previous write of its
// transaction, or all of the time just before p's.
func (p position) before() position {
	if p.op > 0 {
		return position{p.time, p.op - 1}
	}
	if p.time.I == 0 {
		return position{bson.Timestamp{T: p.time.T - 1, I: ^uint32(0)}, allOps}
	}
	return position{bson.Timestamp{T: p.time.T, I: p.time.I - 1}, allOps}
}

func (en *entry) pos() position { return position{en.time, en.txnOp} }

func tsLess(a, b bson.Timestamp) bool {
	return a.T < b.T || (a.T == b.T && a.I < b.I)
}
