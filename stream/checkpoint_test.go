package stream_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// probeStore wraps a TokenStore: it records each save, can be made to
// fail, and wakes waiters on each save.
type probeStore struct {
	stream.TokenStore
	mu    sync.Mutex
	saves []stream.Checkpoint
	fail  error
	wake  chan struct{}
}

func newProbeStore(inner stream.TokenStore) *probeStore {
	return &probeStore{TokenStore: inner, wake: make(chan struct{})}
}

func (p *probeStore) Save(ctx context.Context, name string, cp stream.Checkpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		close(p.wake)
		p.wake = make(chan struct{})
	}()
	if p.fail != nil {
		return p.fail
	}
	if err := p.TokenStore.Save(ctx, name, cp); err != nil {
		return err
	}
	p.saves = append(p.saves, cp)
	return nil
}

func (p *probeStore) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

// saved returns the tokens saved so far.
func (p *probeStore) saved() []stream.Token {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]stream.Token, len(p.saves))
	for i, cp := range p.saves {
		out[i] = cp.Token
	}
	return out
}

// waitFor waits until a save satisfies ok.
func (p *probeStore) waitFor(t *testing.T, ctx context.Context, ok func(stream.Checkpoint) bool) stream.Checkpoint {
	t.Helper()
	for {
		p.mu.Lock()
		wake := p.wake
		for _, cp := range p.saves {
			if ok(cp) {
				p.mu.Unlock()
				return cp
			}
		}
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for a checkpoint: %v", ctx.Err())
		}
	}
}

func tokensEqual(a, b []stream.Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

const hour = time.Hour

// The token of event k is saved only once the consumer asks for event k+1
// (or closes); an All loop left early does not commit its last event.
func TestCheckpointCommitPoint(t *testing.T) {
	t.Run("Next", func(t *testing.T) {
		f := newFixture(t)
		store := newProbeStore(&stream.MemoryStore{})
		s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1, CheckpointInterval: hour})
		f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
		var after []stream.Token
		for i := 1; i <= 3; i++ {
			nextIDs(t, f, s, i)
			// Event i is in the consumer's hands: only i-1 is saved.
			if got := store.saved(); !tokensEqual(got, after) {
				t.Fatalf("after event %d: saved %v, want %v", i, got, after)
			}
			after = append(after, s.ResumeToken())
		}
		if err := s.Close(f.ctx); err != nil {
			t.Fatal(err)
		}
		if got := store.saved(); !tokensEqual(got, after) {
			t.Fatalf("after Close: saved %v, want %v", got, after)
		}
	})
	t.Run("All left early", func(t *testing.T) {
		f := newFixture(t)
		store := newProbeStore(&stream.MemoryStore{})
		o := &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1, CheckpointInterval: hour}
		s := watchWith(t, f, o)
		f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
		var afterFirst stream.Token
		for ev, err := range s.All(f.ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.FullDocument.ID == 1 {
				afterFirst = s.ResumeToken()
				continue
			}
			break // order 2 fails to process
		}
		if got := store.saved(); !tokensEqual(got, []stream.Token{afterFirst}) {
			t.Fatalf("saved %v, want only the token after order 1 %v", got, afterFirst)
		}
		// A restart delivers order 2 again.
		s2 := watchWith(t, f, o)
		nextIDs(t, f, s2, 2, 3)
	})
}

// Saves are throttled to every CheckpointEvery events; Close flushes.
func TestCheckpointThrottle(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointEvery: 3, CheckpointInterval: hour})
	for i := 1; i <= 7; i++ {
		f.insert(t, Order{ID: i})
	}
	var toks []stream.Token
	for i := 1; i <= 7; i++ {
		nextIDs(t, f, s, i)
		toks = append(toks, s.ResumeToken())
	}
	// Next for event 4 committed 1..3, for event 7 committed 4..6.
	if got, want := store.saved(), []stream.Token{toks[2], toks[5]}; !tokensEqual(got, want) {
		t.Fatalf("saved %v, want %v", got, want)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := store.saved(), []stream.Token{toks[2], toks[5], toks[6]}; !tokensEqual(got, want) {
		t.Fatalf("after Close: saved %v, want %v", got, want)
	}
	if st := s.Stats(); !st.Checkpoint.Token.Equal(toks[6]) || st.Checkpoint.UpdatedAt.IsZero() {
		t.Errorf("Stats().Checkpoint = %v at %v, want %v", st.Checkpoint.Token, st.Checkpoint.UpdatedAt, toks[6])
	}
}

// While the stream waits, the postBatchResumeToken is saved, so a quiet
// stream's checkpoint moves with the cluster time.
func TestCheckpointIdleSavesPostBatchToken(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointInterval: time.Millisecond},
		options.ChangeStream().SetMaxAwaitTime(20*time.Millisecond))
	f.insert(t, Order{ID: 1})
	ev := nextOrder(t, f.ctx, s)
	done := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		done <- err
	}()
	// Writes elsewhere move the cluster time on; the watched collection
	// stays quiet.
	if _, err := f.db.Collection("other").InsertOne(f.ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	cp := store.waitFor(t, f.ctx, func(cp stream.Checkpoint) bool { return cp.ClusterTime.After(ev.ClusterTime) })
	if cp.Token.Equal(ev.ID) {
		t.Errorf("idle checkpoint is the event's token")
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Next: %v, want ErrClosed", err)
	}
}

// A failing store is retried at each commit and reported after
// CheckpointFailures failures in a row; the stream goes on.
func TestCheckpointStoreFailures(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	broken := errors.New("disk full")
	store.setFail(broken)
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1, CheckpointFailures: 2, CheckpointInterval: hour})
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	nextIDs(t, f, s, 1, 2)  // the second Next: failure 1
	_, err := s.Next(f.ctx) // failure 2: reported, no event consumed
	var ce *stream.CheckpointError
	if !errors.As(err, &ce) || !errors.Is(err, broken) || ce.Failures != 2 {
		t.Fatalf("Next: %v, want a *CheckpointError of 2 failures wrapping the store's error", err)
	}
	if st := s.Stats(); !errors.Is(st.CheckpointErr, broken) {
		t.Errorf("Stats().CheckpointErr = %v", st.CheckpointErr)
	}
	nextIDs(t, f, s, 3)
	store.setFail(nil)
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after3 := s.ResumeToken()
	if got := store.saved(); len(got) != 1 || !got[0].Equal(after3) {
		t.Errorf("saved %v, want only the token after order 3", got)
	}
	if st := s.Stats(); st.CheckpointErr != nil {
		t.Errorf("Stats().CheckpointErr = %v after a save succeeded", st.CheckpointErr)
	}

	// Close reports a failed final save.
	s2 := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointInterval: hour})
	f.insert(t, Order{ID: 4})
	nextIDs(t, f, s2, 4)
	store.setFail(broken)
	if err := s2.Close(f.ctx); !errors.Is(err, broken) {
		t.Errorf("Close: %v, want the store's error", err)
	}
}

// A saved checkpoint takes precedence over the driver's resume options;
// these apply only to the first run. An invalidate's token resumes with
// startAfter.
func TestWatchResumesFromCheckpoint(t *testing.T) {
	f := newFixture(t)
	store := &stream.MemoryStore{}
	o := &stream.Options{Store: store, Name: "orders"}
	f.insert(t, Order{ID: 1})
	start := &bson.Timestamp{T: 1, I: 0}
	s := watchWith(t, f, o, options.ChangeStream().SetStartAtOperationTime(start))
	nextIDs(t, f, s, 1)
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 2})
	s2 := watchWith(t, f, o, options.ChangeStream().SetStartAtOperationTime(start))
	nextIDs(t, f, s2, 2)
	aggs := f.mon.commands("aggregate")
	st := changeStreamStage(t, aggs[len(aggs)-1])
	if st.Lookup("startAtOperationTime").Type != 0 || st.Lookup("resumeAfter").Type == 0 {
		t.Errorf("second run: %v, want resumeAfter the checkpoint only", st)
	}

	// The checkpoint of an invalidate event.
	if err := f.coll.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []stream.OperationType{stream.OpDrop, stream.OpInvalidate} {
		if ev := nextOrder(t, f.ctx, s2); ev.OperationType != want {
			t.Fatalf("event %q, want %q", ev.OperationType, want)
		}
	}
	if _, err := s2.Next(f.ctx); !errors.Is(err, stream.ErrInvalidated) {
		t.Fatalf("Next: %v, want ErrInvalidated", err)
	}
	s2.Close(f.ctx)
	f.insert(t, Order{ID: 3})
	s3 := watchWith(t, f, o)
	nextIDs(t, f, s3, 3)
	aggs = f.mon.commands("aggregate")
	if st := changeStreamStage(t, aggs[len(aggs)-1]); st.Lookup("startAfter").Type == 0 {
		t.Errorf("after an invalidate: %v, want startAfter", st)
	}
}

// A checkpoint that cannot be read stops Watch; it is never a fresh start.
func TestWatchCheckpointUnreadable(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	fs, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := fs.Path("orders")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Watch[bson.Raw](f.ctx, f.coll, nil, &stream.Options{Store: fs, Name: "orders"})
	var ce *stream.CorruptCheckpointError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Fatalf("Watch: %v, want a *CorruptCheckpointError naming the file", err)
	}
	if n := len(f.mon.commands("aggregate")); n != 0 {
		t.Errorf("%d aggregates: the stream started anyway", n)
	}
}

// Invalid options are an error from Watch.
func TestOptionsValidation(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		opts stream.Options
		want string
	}{
		{"store without name", stream.Options{Store: &stream.MemoryStore{}}, "Name"},
		{"bad name", stream.Options{Store: &stream.MemoryStore{}, Name: "a\x01"}, "control character"},
		{"negative every", stream.Options{CheckpointEvery: -1}, "CheckpointEvery"},
		{"negative interval", stream.Options{CheckpointInterval: -1}, "CheckpointInterval"},
		{"negative failures", stream.Options{CheckpointFailures: -1}, "CheckpointFailures"},
		{"negative delay", stream.Options{RewatchDelay: -1}, "RewatchDelay"},
		{"negative attempts", stream.Options{RewatchAttempts: -1}, "RewatchAttempts"},
		{"negative timeout", stream.Options{RewatchTimeout: -1}, "RewatchTimeout"},
		{"delay above max", stream.Options{RewatchDelay: time.Minute, RewatchMaxDelay: time.Second}, "above RewatchMaxDelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, &tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Watch: %v, want an error about %s", err, tt.want)
			}
		})
	}
	if n := len(f.mon.commands("aggregate")); n != 0 {
		t.Errorf("%d aggregates for invalid options", n)
	}
}
