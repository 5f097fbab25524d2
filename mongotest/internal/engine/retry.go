package engine

import (
	"context"
	"sync"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Retryable writes. The driver sends insert, update, delete and
// findAndModify with the session's lsid and a txnNumber, and after a
// network error sends the same command again with the same txnNumber. A
// real server executes the statement once: it remembers per session the
// latest txnNumber and the outcome of its statements, and answers a retry
// from that record. mongotest remembers the whole reply of the latest
// retryable write per session, which is the same for the single-statement
// and all-succeeded batches drivers retry.

// maxRetrySessions bounds the sessions remembered; the oldest is
// forgotten first. A driver's session pool stays far below it.
const maxRetrySessions = 1000

// retryTable is the record of retryable writes by session (lsid.id).
type retryTable struct {
	mu       sync.Mutex
	sessions map[string]*retrySession
	order    []string // session keys, oldest first
}

// retrySession is a session's latest retryable write.
type retrySession struct {
	txnNumber int64
	reply     bsoncore.Document // the reply once the write ran; nil otherwise
	running   chan struct{}     // closed when a running write ends; nil when none runs
}

// begin looks the statement up: it returns the remembered reply of a
// write the session already ran, or marks the write as running and
// returns its record. A write of the same txnNumber still running (a
// retry racing the original) is waited for.
func (t *retryTable) begin(ctx context.Context, key string, txn int64) (*retrySession, bsoncore.Document, error) {
	for {
		t.mu.Lock()
		sess := t.sessions[key]
		switch {
		case sess == nil:
			sess = &retrySession{}
			t.addLocked(key, sess)
		case txn < sess.txnNumber:
			t.mu.Unlock()
			return nil, nil, codes.Errorf(codes.TransactionTooOld, "Retryable write with txnNumber %d is prohibited on session because a newer retryable write with txnNumber %d has already started on this session.", txn, sess.txnNumber)
		case txn == sess.txnNumber && sess.reply != nil:
			reply := sess.reply
			t.mu.Unlock()
			return nil, reply, nil
		case txn == sess.txnNumber && sess.running != nil:
			wait := sess.running
			t.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		sess.txnNumber, sess.reply, sess.running = txn, nil, make(chan struct{})
		t.mu.Unlock()
		return sess, nil, nil
	}
}

// end records the outcome of a write begin let run. A command that failed
// as a whole ran no statement: a retry runs it again.
func (t *retryTable) end(sess *retrySession, body bsoncore.Document, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		sess.reply = body
	}
	close(sess.running)
	sess.running = nil
}

// addLocked records a new session, forgetting the oldest idle one when
// the table is full.
func (t *retryTable) addLocked(key string, sess *retrySession) {
	if t.sessions == nil {
		t.sessions = make(map[string]*retrySession)
	}
	// Forget the oldest idle sessions; at most one pass, so that a table
	// full of running writes grows rather than spins.
	for tries := len(t.order); len(t.sessions) >= maxRetrySessions && tries > 0; tries-- {
		old := t.order[0]
		t.order = t.order[1:]
		if o := t.sessions[old]; o != nil && o.running != nil {
			t.order = append(t.order, old) // busy: keep it
			continue
		}
		delete(t.sessions, old)
	}
	t.sessions[key] = sess
	t.order = append(t.order, key)
}

// endSessions forgets the records of the sessions a client ended, as a
// real server does when it ends a session; a write still running keeps
// its record until it ends.
func (t *retryTable) endSessions(keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if sess := t.sessions[k]; sess != nil && sess.running == nil {
			delete(t.sessions, k)
		}
	}
	if len(t.order) > 2*len(t.sessions)+16 {
		live := t.order[:0]
		for _, k := range t.order {
			if t.sessions[k] != nil {
				live = append(live, k)
			}
		}
		t.order = live
	}
}

// Retry is a retryable write BeginRetry let run.
type Retry struct{ sess *retrySession }

// BeginRetry looks up the retryable write txn of the session key (its
// lsid.id). When the session already ran it, it returns the remembered
// reply; otherwise it marks the write as running, and the caller runs it
// and calls EndRetry. A retry racing the original waits for it, until ctx
// ends. An older txn than the session's latest fails with
// TransactionTooOld.
func (e *Engine) BeginRetry(ctx context.Context, key string, txn int64) (Retry, bsoncore.Document, error) {
	sess, reply, err := e.retries.begin(ctx, key, txn)
	return Retry{sess}, reply, err
}

// EndRetry records the outcome of a write BeginRetry let run: its reply
// when it succeeded; a command that failed as a whole can run again.
func (e *Engine) EndRetry(r Retry, reply bsoncore.Document, err error) {
	e.retries.end(r.sess, reply, err)
}

// EndSessions forgets the retryable-write records of the sessions keys
// names, as a real server does when a client ends its sessions.
func (e *Engine) EndSessions(keys []string) { e.retries.endSessions(keys) }
