package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrNotDelivered is returned by Stream.Commit for a token that does not
// name an event the stream delivered and has not committed yet: the _id of
// an event not delivered yet, a token of another stream, a
// postBatchResumeToken that is not the current ResumeToken, the zero
// Token, or a made-up one.
var ErrNotDelivered = errors.New("changestream: commit of a token the stream did not deliver")

// ErrAlreadyCommitted is returned by Stream.Commit for the token of an event
// at or behind the committed position: the position only moves forward.
var ErrAlreadyCommitted = errors.New("changestream: commit of an event at or behind the committed position")

// mark is a position in the stream: resume after tok.
type mark struct {
	tok  Token
	ct   bson.Timestamp      // the cluster time of the event (or of tok)
	wall time.Time           // the event's wallTime, when it had one
	snap *SnapshotCheckpoint // during a snapshot, how far the scan got (tok is its fixed point); never modified
}

// checkpoint returns the Checkpoint of m.
func (m mark) checkpoint() Checkpoint {
	cp := checkpointAt(m.tok, m.ct, m.wall)
	cp.Snapshot = m.snap
	return cp
}

// same reports whether m and n are the same position.
func (m mark) same(n mark) bool { return m.tok.Equal(n.tok) && m.snap.equal(n.snap) }

// inFlight is an event delivered and not committed.
type inFlight struct {
	id    Token // the event's _id
	after mark  // the position after it
}

// position owns a stream's position: where the events delivered so far end
// (ResumeToken), how far they were committed, what was saved, and the
// newest cluster time the server reported. It is the only writer of these
// marks; Next, TryNext, All, Batches, Commit, the idle checkpoints of the
// fetch goroutine and Close all go through its methods, from whatever
// goroutine they run on. mu guards the marks and is never held over I/O;
// saveMu serialises the saves to the store.
type position struct {
	// Settings, fixed at Watch. store is nil without Options.Store.
	store    TokenStore
	name     string
	every    int
	interval time.Duration
	maxFail  int
	log      *slog.Logger
	identity Identity // stamped on every checkpoint saved

	saveMu   sync.Mutex // held over a Save
	failures int        // failed saves in a row; saveMu

	mu        sync.Mutex
	delivered mark       // after the last event delivered, or the idle postBatchResumeToken after it
	inflight  []inFlight // inflight[head:]: delivered, not committed, oldest first
	head      int        // committed entries at the start of inflight, cleared
	committed mark       // through which the consumer is done
	unsaved   int        // committed events not saved yet
	dirty     bool       // committed differs from saved
	saved     Checkpoint // the last checkpoint saved or loaded
	lastSave  time.Time  // when the last save succeeded (or the stream opened)
	saveErr   error      // the last save error, nil after a success
	idleErr   error      // a *CheckpointError of an idle save, for the consumer's next call
	final     bool       // Close has flushed: every commit saves at once
	newest    bson.Timestamp
	caughtUp  bool  // delivered is an idle postBatchResumeToken: the server had nothing more
	restart   Token // a delivered invalidate event's _id: the next watch starts after it

	committedEvents     int64 // events committed so far
	saves, saveFailures int64 // saves that succeeded, and that failed
}

func newPosition(o *Options) *position {
	return &position{
		store: o.Store, name: o.Name, every: o.CheckpointEvery, interval: o.CheckpointInterval,
		maxFail: o.CheckpointFailures, log: o.Logger, lastSave: time.Now(),
	}
}

// loaded records the checkpoint Watch resumed from.
func (p *position) loaded(cp Checkpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.saved = cp
	p.committed = mark{tok: cp.Token, ct: cp.ClusterTime, wall: cp.WallTime, snap: cp.Snapshot}
}

// opened records the driver's resume token once a watch opened: the
// startAfter or resumeAfter token, or the postBatchResumeToken of an empty
// first batch.
func (p *position) opened(tok Token) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delivered = mark{tok: tok}
	p.delivered.ct = tokenTime(tok)
	p.noteTime(p.delivered.ct)
}

// deliver records an event handed to the consumer: its _id and the
// position after it. restart is set for an invalidate event after which
// the stream watches again.
func (p *position) deliver(id Token, after mark, restart bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noteTime(after.ct)
	if !after.tok.Equal(id) {
		// The batch's postBatchResumeToken (once per batch: reading a
		// token's time allocates).
		p.noteTime(tokenTime(after.tok))
	}
	p.delivered = after
	p.caughtUp = false
	p.inflight = append(p.inflight, inFlight{id: id, after: after})
	if restart {
		p.restart = id
	}
}

// idle records the postBatchResumeToken tok of an empty batch: every event
// the server sent before it was delivered, so it becomes the resume point.
// With no event in flight it is committed too (and saved when the throttle
// allows); otherwise committing the last event in flight commits it.
func (p *position) idle(ctx context.Context, tok Token) {
	if tok.IsZero() {
		return
	}
	p.mu.Lock()
	p.delivered = mark{tok: tok, ct: tokenTime(tok)}
	p.noteTime(p.delivered.ct)
	p.caughtUp = true
	commit := p.inflightLen() == 0 && p.advanceLocked(p.delivered, 0)
	p.mu.Unlock()
	if !commit || p.store == nil {
		return
	}
	if err := p.save(ctx, false, saveTimeout); err != nil {
		p.mu.Lock()
		p.idleErr = err
		p.mu.Unlock()
	}
}

// serverTime records the cluster time of a reply of the server.
func (p *position) serverTime(ct bson.Timestamp) {
	if ct.IsZero() {
		return
	}
	p.mu.Lock()
	p.noteTime(ct)
	p.mu.Unlock()
}

// noteTime records a cluster time the server reported; mu is held.
func (p *position) noteTime(ct bson.Timestamp) {
	if ct.After(p.newest) {
		p.newest = ct
	}
}

// commitDelivered commits every event delivered so far (the commit point
// of Next, TryNext and All), and saves when the throttle allows or force
// is set. It returns the error of an idle save made since the last call,
// too.
func (p *position) commitDelivered(ctx context.Context, force bool) error {
	p.mu.Lock()
	idleErr := p.idleErr
	p.idleErr = nil
	n := p.inflightLen()
	p.dropLocked(n)
	p.advanceLocked(p.delivered, n)
	final := p.final
	p.mu.Unlock()
	if p.store == nil {
		return idleErr
	}
	if err := p.save(ctx, force || final, saveTimeout); err != nil {
		return err
	}
	return idleErr
}

// commitThrough commits the position through the delivered event tok
// names, by its _id or the position after it. The saves it makes are
// throttled, unless the stream was closed.
func (p *position) commitThrough(ctx context.Context, tok Token) error {
	p.mu.Lock()
	i := p.findLocked(tok)
	if i < 0 {
		err := p.refuseLocked(tok)
		p.mu.Unlock()
		return err
	}
	to := p.inflight[p.head+i].after
	if i == p.inflightLen()-1 {
		to = p.delivered // with the idle token after it, if any
	}
	p.dropLocked(i + 1)
	p.advanceLocked(to, i+1)
	final := p.final
	p.mu.Unlock()
	if p.store == nil {
		return nil
	}
	return p.save(ctx, final, saveTimeout)
}

// inflightLen returns the number of events delivered and not committed.
func (p *position) inflightLen() int { return len(p.inflight) - p.head }

// dropLocked removes the n oldest events in flight, which were committed.
// It costs O(n) amortised: the live entries move to the front of the slice
// only once the dropped ones outnumber them, so a commit of the oldest
// events (what Process makes) does not shift the whole window.
func (p *position) dropLocked(n int) {
	clear(p.inflight[p.head : p.head+n])
	p.head += n
	switch live := len(p.inflight) - p.head; {
	case live == 0:
		p.inflight, p.head = p.inflight[:0], 0
	case p.head >= live:
		k := copy(p.inflight, p.inflight[p.head:])
		clear(p.inflight[k:])
		p.inflight, p.head = p.inflight[:k], 0
	}
}

// findLocked returns the index among the events in flight (0 the oldest)
// of the event tok names, or -1. The current ResumeToken names the last
// event delivered, also after an idle token moved it. The search starts
// at the oldest event: a commit through the i-th oldest event then costs
// O(i), the number of events it commits, whatever the number in flight.
func (p *position) findLocked(tok Token) int {
	if tok.IsZero() {
		return -1
	}
	live := p.inflight[p.head:]
	if n := len(live); n > 0 && tok.Equal(p.delivered.tok) {
		return n - 1
	}
	for i, e := range live {
		if e.id.Equal(tok) || e.after.tok.Equal(tok) {
			return i
		}
	}
	return -1
}

// refuseLocked explains why tok cannot be committed.
func (p *position) refuseLocked(tok Token) error {
	if tok.IsZero() {
		return fmt.Errorf("%w: the token is zero", ErrNotDelivered)
	}
	if tok.Equal(p.committed.tok) || tokenBefore(tok, p.committed.tok) {
		return fmt.Errorf("%w (token %s, committed %s)", ErrAlreadyCommitted, tok, p.committed.tok)
	}
	return fmt.Errorf("%w (token %s; %d events delivered and not committed)", ErrNotDelivered, tok, p.inflightLen())
}

// advanceLocked moves the committed position to m, after events more
// events; mu is held. It reports whether the position moved.
func (p *position) advanceLocked(m mark, events int) bool {
	p.unsaved += events
	p.committedEvents += int64(events)
	if m.tok.IsZero() || m.same(p.committed) {
		return false
	}
	p.committed = m
	p.dirty = !m.same(mark{tok: p.saved.Token, snap: p.saved.Snapshot})
	return true
}

// save saves the committed position when it is not saved yet and the
// throttle allows (CheckpointEvery events or CheckpointInterval since the
// last save), or always with force. A timeout above zero bounds the Save. It returns a *CheckpointError when
// this save makes CheckpointFailures failures in a row, and with force the
// error of any failed save.
func (p *position) save(ctx context.Context, force bool, timeout time.Duration) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	if !p.dirty || (!force && p.unsaved < p.every && time.Since(p.lastSave) < p.interval) {
		p.mu.Unlock()
		return nil
	}
	cp, events := p.committed.checkpoint(), p.unsaved
	p.mu.Unlock()

	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cp.UpdatedAt = time.Now()
	cp.Identity = p.identity
	err := p.store.Save(ctx, p.name, cp)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.saves++
		p.failures = 0
		p.saved, p.lastSave, p.saveErr = cp, cp.UpdatedAt, nil
		p.unsaved -= events
		p.dirty = !p.committed.same(mark{tok: cp.Token, snap: cp.Snapshot})
		p.log.Debug("changestream: checkpoint saved", "token", cp.Token.String())
		return nil
	}
	p.failures++
	p.saveFailures++
	p.saveErr = err
	p.log.Warn("changestream: could not save the checkpoint; retrying at the next commit",
		"failures", p.failures, "token", cp.Token.String(), "err", err)
	if p.failures >= p.maxFail {
		n := p.failures
		p.failures = 0
		return &CheckpointError{Stream: p.name, Failures: n, Err: err}
	}
	if force {
		// A final save: its failure is always reported.
		return fmt.Errorf("changestream: could not save the checkpoint of stream %q: %w", p.name, err)
	}
	return nil
}

// close is Close's commit: with all set it commits every event delivered,
// then it saves the committed position if it was not saved yet, with ctx
// and no timeout of its own. Every later commit (by Commit, of work that
// was in flight when Close was called) saves at once.
func (p *position) close(ctx context.Context, all bool) error {
	p.mu.Lock()
	p.final = true
	var idleErr error
	if all {
		idleErr = p.idleErr
		p.idleErr = nil
		n := p.inflightLen()
		p.dropLocked(n)
		p.advanceLocked(p.delivered, n)
	}
	p.mu.Unlock()
	if p.store == nil {
		return nil
	}
	if err := p.save(ctx, true, 0); err != nil {
		return err
	}
	return idleErr
}

// takeIdleErr returns, once, the error of an idle save.
func (p *position) takeIdleErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.idleErr
	p.idleErr = nil
	return err
}

// resumeToken returns the position after the last event delivered.
func (p *position) resumeToken() Token {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered.tok
}

// takeRestart returns, once, the _id of the delivered invalidate event after
// which the stream watches again; the zero Token when there is none.
func (p *position) takeRestart() Token {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok := p.restart
	p.restart = Token{}
	return tok
}

// restartPending reports whether a delivered invalidate event waits for the
// stream to watch again after it.
func (p *position) restartPending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.restart.IsZero()
}

// positionState is a copy of a position's figures, for Stats.
type positionState struct {
	delivered, committed mark
	inflight             int
	newest               bson.Timestamp
	caughtUp             bool
	saved                Checkpoint
	saveErr              error

	committedEvents, saves, saveFailures int64
}

func (p *position) state() positionState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return positionState{
		delivered: p.delivered, committed: p.committed, inflight: p.inflightLen(),
		newest: p.newest, caughtUp: p.caughtUp, saved: p.saved, saveErr: p.saveErr,
		committedEvents: p.committedEvents, saves: p.saves, saveFailures: p.saveFailures,
	}
}

// tokenTime returns the cluster time tok carries, or the zero Timestamp.
func tokenTime(tok Token) bson.Timestamp {
	ct, err := tok.ClusterTime()
	if err != nil {
		return bson.Timestamp{}
	}
	return ct
}

// tokenBefore reports whether a comes before b in a stream: both are
// tokens of the {_data: "<hex>"} form servers issue, which sort by _data.
// It is false when either is of another form.
func tokenBefore(a, b Token) bool {
	da, ok1 := a.data()
	db, ok2 := b.data()
	return ok1 && ok2 && isHexData(da) && isHexData(db) && len(da) > 0 && da < db
}
