package stream

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A TokenStore keeps one checkpoint per stream name, so that a program that
// restarts can resume its change stream where it left off. MemoryStore,
// FileStore and CollectionStore implement it; any other storage can, too.
//
// Implementations must be safe for concurrent use and must honour the
// context's cancellation and deadline.
type TokenStore interface {
	// Load returns the checkpoint last saved for the stream name. When no
	// checkpoint was ever saved for it, Load returns the zero Checkpoint and
	// an error for which errors.Is(err, ErrNoCheckpoint) is true; that is
	// the only case that means "start fresh". Any other error, such as a
	// *CorruptCheckpointError, must not be treated as a fresh start.
	Load(ctx context.Context, name string) (Checkpoint, error)

	// Save records cp as the checkpoint of the stream name, replacing the
	// previous one. When Save returns nil the checkpoint is durable to the
	// degree the store promises; when it returns an error, the previous
	// checkpoint (or none) is still the one Load returns.
	Save(ctx context.Context, name string, cp Checkpoint) error
}

// Checkpoint is the resume point of a stream as a TokenStore keeps it.
type Checkpoint struct {
	// Token is the resume token to resume after. A saved checkpoint always
	// has one; Save rejects a checkpoint whose Token is zero.
	Token Token

	// ClusterTime is the cluster time of the change the token stands for:
	// the event's clusterTime, or Token.ClusterTime for a
	// postBatchResumeToken. It may be zero when neither is known.
	ClusterTime bson.Timestamp

	// WallTime is the event's wallTime, when it had one; otherwise zero.
	WallTime time.Time

	// UpdatedAt is when the checkpoint was saved. Save fills it with the
	// current time when it is zero.
	UpdatedAt time.Time

	// Identity says which stream saved the checkpoint: what it watches and
	// a fingerprint of its pipeline. A Stream stamps it on every checkpoint
	// it saves and Watch refuses a checkpoint of another identity; the zero
	// value (unknown) is accepted. A TokenStore must store it and give it
	// back from Load as it was saved.
	Identity Identity

	// Snapshot, when not nil, records a snapshot still under way: Token is
	// then the point the change stream goes on from after the scan (see
	// Options.NoCheckpoint). Stores keep it with the rest of the
	// checkpoint; nil once the snapshot is done, and for every stream
	// without one.
	Snapshot *SnapshotCheckpoint
}

// ErrNoCheckpoint is returned by TokenStore.Load when no checkpoint was
// ever saved for the stream name.
var ErrNoCheckpoint = errors.New("changestream: no checkpoint saved for this stream")

// ErrInvalidStreamName is returned, wrapped with the offending name, by the
// stores of this package for a stream name they cannot store: an empty name,
// one longer than MaxStreamNameLen bytes, one that is not valid UTF-8 or that
// holds a control character, or (for FileStore) one that is not a safe
// file name.
var ErrInvalidStreamName = errors.New("changestream: invalid stream name")

// MaxStreamNameLen is the longest stream name, in bytes, the stores of this
// package accept.
const MaxStreamNameLen = 200

// CorruptCheckpointError reports a checkpoint that exists but cannot be
// read: a truncated or damaged file, a file some other program wrote, or a
// stored document whose token is malformed. It is never a fresh start: the
// stream must not resume from "now" when its saved position is unreadable.
type CorruptCheckpointError struct {
	// Stream is the stream name the checkpoint was loaded for.
	Stream string

	// Source names where the checkpoint is kept: the file path for a
	// FileStore, "collection <db>.<coll>" for a CollectionStore.
	Source string

	// Err describes what is wrong.
	Err error
}

// Error implements the error interface.
func (e *CorruptCheckpointError) Error() string {
	return fmt.Sprintf("changestream: checkpoint of stream %q in %s is unreadable: %v", e.Stream, e.Source, e.Err)
}

// Unwrap returns e.Err.
func (e *CorruptCheckpointError) Unwrap() error { return e.Err }

// checkStreamName validates a stream name for every store.
func checkStreamName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrInvalidStreamName)
	case len(name) > MaxStreamNameLen:
		return fmt.Errorf("%w %q: longer than %d bytes", ErrInvalidStreamName, abbreviate(name), MaxStreamNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidStreamName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: holds a control character", ErrInvalidStreamName, name)
		}
	}
	return nil
}

// checkSave validates the arguments of a Save and returns the checkpoint to
// store, with UpdatedAt filled in.
func checkSave(ctx context.Context, name string, cp Checkpoint) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	if err := checkStreamName(name); err != nil {
		return Checkpoint{}, err
	}
	if cp.Token.IsZero() {
		return Checkpoint{}, fmt.Errorf("changestream: checkpoint of stream %q has no token", name)
	}
	if cp.Snapshot != nil {
		if err := cp.Snapshot.check(); err != nil {
			return Checkpoint{}, fmt.Errorf("changestream: checkpoint of stream %q: %w", name, err)
		}
		cp.Snapshot = cp.Snapshot.clone()
	}
	if cp.UpdatedAt.IsZero() {
		cp.UpdatedAt = time.Now()
	}
	return cp, nil
}
