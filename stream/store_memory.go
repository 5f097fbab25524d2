package stream

import (
	"context"
	"sync"
)

// MemoryStore is a TokenStore that keeps checkpoints in memory, for tests
// and for programs that only need to survive a re-watch, not a restart. The
// zero value is an empty store ready to use; a MemoryStore is safe for
// concurrent use and must not be copied after first use.
type MemoryStore struct {
	mu  sync.Mutex
	cps map[string]Checkpoint
}

// Load returns the checkpoint saved for name, or ErrNoCheckpoint.
func (m *MemoryStore) Load(ctx context.Context, name string) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	if err := checkStreamName(name); err != nil {
		return Checkpoint{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.cps[name]
	if !ok {
		return Checkpoint{}, ErrNoCheckpoint
	}
	cp.Snapshot = cp.Snapshot.clone()
	return cp, nil
}

// Save records cp for name. It fails for a checkpoint without a token.
func (m *MemoryStore) Save(ctx context.Context, name string, cp Checkpoint) error {
	cp, err := checkSave(ctx, name, cp)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps = make(map[string]Checkpoint)
	}
	m.cps[name] = cp
	return nil
}
