package engine

import (
	"slices"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Multi-document transactions on the one node.
//
// A transaction reads and writes a workspace: an engine of its own whose
// collections are copies of the data at the transaction's first command
// (its snapshot; documents are immutable, so a copy shares them). Its
// writes stay in the workspace, invisible to others, and its change-log
// entries are kept there. Each write locks the documents it touched: a
// document another open transaction holds, or that was changed after the
// snapshot, is a WriteConflict (112), which aborts the transaction, as on
// a real server. Commit applies the workspace's version of every locked
// document to the data and appends the entries to the change log, in
// order, each carrying the transaction's lsid and txnNumber; abort drops
// the workspace.
//
// As on a real server (one applyOps oplog entry), every event of a
// committed transaction has the commit's cluster time, and its resume
// token tells it apart by its index in the transaction (txnOpIndex), so
// that tokens sort in stream order and resuming after any of them
// continues with the next one. A write outside
// any transaction to a document an open transaction holds does not wait
// for it, as it would on a real server: it is applied, and the
// transaction's commit then overwrites it.

// txn is one session's transaction.
type txn struct {
	session string // lsid id
	lsid    bsoncore.Document
	number  int64
	state   txnState
	base    map[string]*database // the snapshot, unchanged
	ws      *Engine              // the workspace
	locked  map[docRef]bool      // documents written
	// logged is how many workspace log entries have been checked.
	logged int
}

type txnState int

const (
	txnActive txnState = iota
	txnCommitted
	txnAborted
)

// docRef names one document of one collection.
type docRef struct{ db, coll, key string }

// cloneDatabases copies the databases and collections (not the
// documents, which are immutable).
func cloneDatabases(dbs map[string]*database) map[string]*database {
	out := make(map[string]*database, len(dbs))
	for name, d := range dbs {
		nd := &database{name: d.name, colls: make(map[string]*collection, len(d.colls))}
		for cn, c := range d.colls {
			nd.colls[cn] = c.clone()
		}
		out[name] = nd
	}
	return out
}

// clone copies a collection's documents (shared) and metadata.
func (c *collection) clone() *collection {
	n := *c
	n.indexes = slices.Clone(c.indexes)
	n.order = make([]string, 0, len(c.byKey))
	n.byKey = make(map[string]bsoncore.Document, len(c.byKey))
	n.dead = 0
	n.uniq = nil
	c.each(func(k string, d bsoncore.Document) bool {
		n.order = append(n.order, k)
		n.byKey[k] = d
		return true
	})
	return &n
}

// TxnRequest is the session part of a command sent in a transaction.
type TxnRequest struct {
	Session string            // lsid id
	LSID    bsoncore.Document // the lsid document, as events show it
	Number  int64             // txnNumber
	Start   bool              // startTransaction: true
}

// Txn returns the workspace engine that a command of a transaction runs
// against, starting the transaction when the command starts it. It fails
// as a real server does: NoSuchTransaction (251) for a transaction that
// is not open, TransactionTooOld (225) for a number below the session's
// latest, ConflictingOperationInProgress (117) to start one twice.
func (e *Engine) Txn(req TxnRequest) (*Engine, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.txns[req.Session]
	if t != nil && req.Number < t.number {
		return nil, codes.Errorf(codes.TransactionTooOld, "Cannot start transaction %d on session %s because a newer transaction %d has already started", req.Number, sessionString(req.Session), t.number)
	}
	if req.Start {
		if t != nil && t.number == req.Number {
			return nil, codes.Errorf(codes.ConflictingOperationInProgress, "Cannot start transaction %d on session %s because it has already been started", req.Number, sessionString(req.Session))
		}
		if t != nil && t.state == txnActive {
			e.abortLocked(t)
		}
		t = &txn{session: req.Session, lsid: req.LSID, number: req.Number, locked: map[docRef]bool{}}
		t.base = cloneDatabases(e.dbs)
		t.ws = e.workspaceLocked()
		e.txns[req.Session] = t
		return t.ws, nil
	}
	if t == nil || t.number != req.Number {
		return nil, noSuchTransaction(req.Number, "does not match any in-progress transactions")
	}
	switch t.state {
	case txnAborted:
		return nil, noSuchTransaction(req.Number, "has been aborted")
	case txnCommitted:
		return nil, codes.Errorf(codes.TransactionCommitted, "Transaction %d has been committed.", req.Number)
	}
	return t.ws, nil
}

func noSuchTransaction(n int64, why string) error {
	if why == "has been aborted" {
		return codes.Errorf(codes.NoSuchTransaction, "Transaction with { txnNumber: %d } has been aborted.", n)
	}
	return codes.Errorf(codes.NoSuchTransaction, "Given transaction number %d does not match any in-progress transactions. The active transaction number is -1", n)
}

// CheckTxnWrites checks the writes a command of the transaction just made
// in its workspace: each document it touched is locked for the
// transaction, unless another open transaction holds it or it changed
// since the snapshot; then the transaction is aborted and the command
// fails with WriteConflict (112).
func (e *Engine) CheckTxnWrites(session string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.txns[session]
	if t == nil || t.state != txnActive {
		return nil
	}
	t.ws.mu.Lock()
	entries := slices.Clone(t.ws.log.entries[t.logged:])
	t.logged = len(t.ws.log.entries)
	t.ws.mu.Unlock()
	for _, en := range entries {
		if en.docKey == nil {
			continue
		}
		k, _ := bsonutil.DocKey(en.docKey)
		ref := docRef{en.db, en.coll, k}
		if t.locked[ref] {
			continue
		}
		conflict := false
		for _, other := range e.txns {
			if other != t && other.state == txnActive && other.locked[ref] {
				conflict = true
			}
		}
		if !conflict && !sameDoc(docIn(t.base, ref), docIn(e.dbs, ref)) {
			conflict = true
		}
		if conflict {
			e.abortLocked(t)
			return codes.Errorf(codes.WriteConflict, "Caused by :: Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.")
		}
		t.locked[ref] = true
	}
	return nil
}

func docIn(dbs map[string]*database, ref docRef) bsoncore.Document {
	d := dbs[ref.db]
	if d == nil {
		return nil
	}
	c := d.colls[ref.coll]
	if c == nil {
		return nil
	}
	doc, _ := c.get(ref.key)
	return doc
}

func sameDoc(a, b bsoncore.Document) bool {
	return (a == nil) == (b == nil) && string(a) == string(b)
}

// CommitTransaction commits the session's transaction number n. A retried
// commit of a committed transaction succeeds again, as on a real server.
func (e *Engine) CommitTransaction(session string, n int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.txns[session]
	if t == nil || t.number != n {
		return noSuchTransaction(n, "does not match any in-progress transactions")
	}
	switch t.state {
	case txnCommitted:
		return nil
	case txnAborted:
		return noSuchTransaction(n, "has been aborted")
	}
	t.ws.mu.Lock()
	defer t.ws.mu.Unlock()
	// Collections the transaction created or indexed take the workspace's
	// metadata (UUID, indexes).
	for _, en := range t.ws.log.entries {
		switch en.op {
		case opCreate, opCreateIndexes:
			wc := t.ws.collLocked(en.db, en.coll)
			if wc == nil {
				continue
			}
			rc := e.collLocked(en.db, en.coll)
			if rc == nil {
				rc = newCollection(en.db, en.coll)
				e.dbLocked(en.db, true).colls[en.coll] = rc
			}
			rc.uuid, rc.indexes, rc.preAndPostImages, rc.uniq = wc.uuid, slices.Clone(wc.indexes), wc.preAndPostImages, nil
		}
	}
	for ref := range t.locked {
		doc := docIn(t.ws.dbs, ref)
		rc := e.collLocked(ref.db, ref.coll)
		if rc == nil {
			wc := t.ws.collLocked(ref.db, ref.coll)
			rc = newCollection(ref.db, ref.coll)
			if wc != nil {
				rc.uuid, rc.indexes = wc.uuid, slices.Clone(wc.indexes)
			}
			e.dbLocked(ref.db, true).colls[ref.coll] = rc
		}
		if doc != nil {
			rc.put(ref.key, doc)
		} else {
			rc.remove(ref.key)
		}
	}
	ens := make([]*entry, len(t.ws.log.entries))
	for i, en := range t.ws.log.entries {
		cp := *en
		cp.lsid, cp.txnNumber = t.lsid, t.number
		ens[i] = &cp
	}
	e.appendTxnLocked(ens)
	t.state = txnCommitted
	t.base, t.ws.dbs = nil, nil
	return nil
}

// AbortTransaction aborts the session's transaction number n.
func (e *Engine) AbortTransaction(session string, n int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.txns[session]
	if t == nil || t.number != n {
		return noSuchTransaction(n, "does not match any in-progress transactions")
	}
	switch t.state {
	case txnCommitted:
		return codes.Errorf(codes.TransactionCommitted, "Cannot abort transaction %d because it has been committed", n)
	case txnAborted:
		return noSuchTransaction(n, "has been aborted")
	}
	e.abortLocked(t)
	return nil
}

func (e *Engine) abortLocked(t *txn) {
	t.state = txnAborted
	t.base = nil
	t.locked = map[docRef]bool{}
	t.ws.Shutdown()
}

// endTransactionsLocked aborts the open transactions of the sessions
// (all when sessions is nil) and forgets them.
func (e *Engine) endTransactionsLocked(sessions []string) {
	for key, t := range e.txns {
		if sessions != nil && !slices.Contains(sessions, key) {
			continue
		}
		if t.state == txnActive {
			e.abortLocked(t)
		}
		delete(e.txns, key)
	}
}

// EndTransactions aborts and forgets the transactions of the sessions
// (lsid ids) that endSessions or killSessions ended.
func (e *Engine) EndTransactions(sessions []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.endTransactionsLocked(sessions)
}

// workspaceLocked returns an engine over a copy of the data as it is now.
func (e *Engine) workspaceLocked() *Engine {
	return &Engine{
		dbs:           cloneDatabases(e.dbs),
		clock:         e.clock,
		origin:        e.clock,
		log:           newChangeLog(0),
		cursors:       make(map[int64]*cursor),
		txns:          make(map[string]*txn),
		cursorTimeout: e.cursorTimeout,
		done:          make(chan struct{}),
		now:           e.now,
	}
}

// maxSnapshots bounds the snapshots kept for snapshot reads.
const maxSnapshots = 16

// Snapshot returns an engine over the data as of the cluster time at (nil:
// now) and that time, for a read with read concern snapshot outside a
// transaction. mongotest keeps the data as of the times earlier snapshot
// reads were answered at (the last few): a time it has no copy of fails
// with SnapshotTooOld (239), as one older than a real server's history
// window does. Such an engine is read-only for the caller.
func (e *Engine) Snapshot(at *bson.Timestamp) (*Engine, bson.Timestamp, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.clock
	if at != nil {
		t = *at
	}
	for _, s := range e.snapshots {
		if s.time == t {
			return s.ws, t, nil
		}
	}
	if t != e.clock {
		return nil, t, codes.Errorf(codes.SnapshotTooOld, "Read timestamp Timestamp(%d, %d) is older than the oldest available timestamp.", t.T, t.I)
	}
	ws := e.workspaceLocked()
	e.snapshots = append(e.snapshots, snapshot{time: t, ws: ws})
	if len(e.snapshots) > maxSnapshots {
		e.snapshots = e.snapshots[1:]
	}
	return ws, t, nil
}

// snapshot is the data as of one cluster time, kept for snapshot reads.
type snapshot struct {
	time bson.Timestamp
	ws   *Engine
}

// AbortOpenTransaction aborts the session's open transaction, if any: a
// command of it failed.
func (e *Engine) AbortOpenTransaction(session string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.txns[session]; t != nil && t.state == txnActive {
		e.abortLocked(t)
	}
}
