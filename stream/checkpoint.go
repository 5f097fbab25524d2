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

// CheckpointError reports checkpoints that could not be saved:
// Options.CheckpointFailures saves in a row failed. The stream goes on and
// keeps retrying at each commit; until a save succeeds, a restart would
// resume from the last checkpoint saved, so events since then would come
// again.
type CheckpointError struct {
	// Stream is the stream's Options.Name.
	Stream string
	// Failures is how many saves failed in a row.
	Failures int
	// Err is the store's last error.
	Err error
}

// Error describes the failure.
func (e *CheckpointError) Error() string {
	return fmt.Sprintf("changestream: %d checkpoint saves of stream %q failed in a row: %v", e.Failures, e.Stream, e.Err)
}

// Unwrap returns the store's error.
func (e *CheckpointError) Unwrap() error { return e.Err }

// saveTimeout bounds one Save made by the stream itself (Close's uses the
// caller's context).
const saveTimeout = 30 * time.Second

// checkpointer commits and saves a stream's position. Its methods are
// called from the consumer's goroutine, the fetch goroutine (idle
// positions) and Close; mu serialises them.
type checkpointer struct {
	store    TokenStore
	name     string
	every    int
	interval time.Duration
	maxFail  int
	log      *slog.Logger

	mu        sync.Mutex
	committed Checkpoint // the newest committed position
	pending   int        // committed events not saved yet
	dirty     bool       // committed differs from saved
	lastSave  time.Time  // when the last save succeeded (or the stream opened)
	saved     Checkpoint // the last checkpoint saved or loaded
	failures  int        // failed saves in a row
	lastErr   error      // the last save error, nil after a success

	committedEvents int64 // events committed so far
	saves           int64 // saves that succeeded
	saveFailures    int64 // saves that failed

	// pub is a copy of the figures above for Stats, which must not wait
	// for a slow Save holding mu.
	pubMu sync.Mutex
	pub   checkpointFigures
}

// checkpointFigures are the checkpointer's figures for Stats.
type checkpointFigures struct {
	saved                            Checkpoint
	lastErr                          error
	committedEvents, saves, failures int64
}

func newCheckpointer(o *Options) *checkpointer {
	return &checkpointer{
		store: o.Store, name: o.Name, every: o.CheckpointEvery,
		interval: o.CheckpointInterval, maxFail: o.CheckpointFailures,
		log: o.Logger, lastSave: time.Now(),
	}
}

// commit records cp, the position after events more consumed events, and
// saves it when the throttle allows (or always with force). It returns a
// *CheckpointError when this save makes maxFail failures in a row, and with
// force the error of any failed save.
func (c *checkpointer) commit(ctx context.Context, cp Checkpoint, events int, force bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cp.Token.IsZero() && !cp.Token.Equal(c.committed.Token) {
		c.committed = cp
		c.dirty = !cp.Token.Equal(c.saved.Token)
	}
	c.pending += events
	if events > 0 {
		c.committedEvents += int64(events)
		c.publish()
	}
	if !c.dirty {
		return nil
	}
	if !force && c.pending < c.every && time.Since(c.lastSave) < c.interval {
		return nil
	}
	err := c.saveLocked(ctx)
	if force && err == nil && c.dirty {
		// A final save: its failure is always reported.
		return fmt.Errorf("changestream: could not save the checkpoint of stream %q: %w", c.name, c.lastErr)
	}
	return err
}

func (c *checkpointer) saveLocked(ctx context.Context) error {
	cp := c.committed
	cp.UpdatedAt = time.Now()
	err := c.store.Save(ctx, c.name, cp)
	if err == nil {
		c.saved, c.dirty, c.pending, c.lastSave = cp, false, 0, cp.UpdatedAt
		c.failures, c.lastErr = 0, nil
		c.saves++
		c.publish()
		c.log.Debug("changestream: checkpoint saved", "token", cp.Token.String())
		return nil
	}
	c.failures++
	c.saveFailures++
	c.lastErr = err
	c.publish()
	c.log.Warn("changestream: could not save the checkpoint; retrying at the next commit",
		"failures", c.failures, "token", cp.Token.String(), "err", err)
	if c.failures >= c.maxFail {
		n := c.failures
		c.failures = 0
		return &CheckpointError{Stream: c.name, Failures: n, Err: err}
	}
	return nil
}

// flush saves the committed position if it was not saved yet.
func (c *checkpointer) flush(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	if err := c.saveLocked(ctx); err != nil {
		return err
	}
	if c.dirty {
		return fmt.Errorf("changestream: could not save the checkpoint of stream %q: %w", c.name, c.lastErr)
	}
	return nil
}

// loaded records the checkpoint Watch resumed from.
func (c *checkpointer) loaded(cp Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.saved, c.committed = cp, cp
	c.publish()
}

// publish copies the figures for state; mu is held.
func (c *checkpointer) publish() {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.pub = checkpointFigures{saved: c.saved, lastErr: c.lastErr,
		committedEvents: c.committedEvents, saves: c.saves, failures: c.saveFailures}
}

// state returns the figures as of the last publish: the last saved
// checkpoint, the last save error and the counts.
func (c *checkpointer) state() checkpointFigures {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	return c.pub
}

// checkpointAt builds the checkpoint of a position: tok, with the cluster
// time it carries (or ct, the cluster time of its event) and wall, the
// wall time of the last event.
func checkpointAt(tok Token, ct bson.Timestamp, wall time.Time) Checkpoint {
	if t, err := tok.ClusterTime(); err == nil {
		ct = t
	}
	return Checkpoint{Token: tok, ClusterTime: ct, WallTime: wall}
}

// loadCheckpoint loads the stream's checkpoint; ok is false when none was
// saved yet.
func loadCheckpoint(ctx context.Context, o *Options) (cp Checkpoint, ok bool, err error) {
	cp, err = o.Store.Load(ctx, o.Name)
	switch {
	case errors.Is(err, ErrNoCheckpoint):
		return Checkpoint{}, false, nil
	case err != nil:
		return Checkpoint{}, false, fmt.Errorf("changestream: loading the checkpoint of stream %q: %w", o.Name, err)
	case cp.Token.IsZero():
		return Checkpoint{}, false, fmt.Errorf("changestream: the checkpoint of stream %q has no token", o.Name)
	}
	return cp, true, nil
}
