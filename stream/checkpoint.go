package stream

import (
	"context"
	"errors"
	"fmt"
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
