package stream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// lastSaved returns the token of the last checkpoint saved, or the zero
// Token.
func (p *probeStore) lastSaved() stream.Token {
	s := p.saved()
	if len(s) == 0 {
		return stream.Token{}
	}
	return s[len(s)-1]
}

// With ManualCommit, Next commits nothing: Commit moves the checkpoint,
// forward only and only to delivered events, and Close saves only what was
// committed.
func TestManualCommit(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	opts := &stream.Options{Store: store, Name: "orders", ManualCommit: true, CheckpointEvery: 1, CheckpointInterval: hour}
	s := watchWith(t, f, opts)
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	var evs []stream.Event[Order]
	var after []stream.Token // ResumeToken right after each Next
	for i := 1; i <= 3; i++ {
		evs = append(evs, nextOrder(t, f.ctx, s))
		after = append(after, s.ResumeToken())
	}
	if got := store.saved(); len(got) != 0 {
		t.Fatalf("saved %v before any Commit, want nothing", got)
	}
	if st := s.Stats(); st.InFlight != 3 {
		t.Errorf("Stats().InFlight = %d, want the 3 events delivered", st.InFlight)
	}

	// Commit through event 2 by its _id.
	if err := s.Commit(evs[1].ID); err != nil {
		t.Fatalf("Commit(event 2): %v", err)
	}
	if got := store.lastSaved(); !got.Equal(after[1]) {
		t.Fatalf("saved %v, want the position after event 2 %v", got, after[1])
	}
	if st := s.Stats(); st.InFlight != 1 {
		t.Errorf("Stats().InFlight = %d after committing 2 of 3, want 1", st.InFlight)
	}

	// Behind or at the committed position; never delivered.
	other := watchOrders(t, f, options.ChangeStream().SetStartAfter(evs[2].ID.Raw()))
	f.insert(t, Order{ID: 4})
	ev4 := nextOrder(t, f.ctx, other) // delivered by other, not by s
	refused := []struct {
		name string
		tok  stream.Token
		want error
	}{
		{"event 1, behind the committed position", evs[0].ID, stream.ErrAlreadyCommitted},
		{"event 2 again", evs[1].ID, stream.ErrAlreadyCommitted},
		{"the token after event 2 again", after[1], stream.ErrAlreadyCommitted},
		{"the zero token", stream.Token{}, stream.ErrNotDelivered},
		{"event 4, not delivered yet", ev4.ID, stream.ErrNotDelivered},
		{"a made-up token", tokenOf(t, bson.D{{Key: "_data", Value: "not a token"}}), stream.ErrNotDelivered},
	}
	for _, r := range refused {
		if err := s.Commit(r.tok); !errors.Is(err, r.want) {
			t.Errorf("Commit(%s) = %v, want %v", r.name, err, r.want)
		}
	}
	if got := store.lastSaved(); !got.Equal(after[1]) {
		t.Fatalf("a refused Commit moved the checkpoint to %v", got)
	}

	// Through event 3 by the ResumeToken read after it; then event 4 is
	// delivered but not committed, and Close saves nothing new.
	if err := s.Commit(after[2]); err != nil {
		t.Fatalf("Commit(ResumeToken after event 3): %v", err)
	}
	nextIDs(t, f, s, 4)
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := store.lastSaved(); !got.Equal(after[2]) {
		t.Fatalf("after Close: saved %v, want the committed position after event 3 %v", got, after[2])
	}

	// A new stream resumes after the committed event: 4 comes again.
	s2 := watchWith(t, f, opts)
	ev := nextOrder(t, f.ctx, s2)
	if ev.FullDocument == nil || ev.FullDocument.ID != 4 {
		t.Fatalf("after a restart: %s %v, want the insert of order 4 again", ev.OperationType, ev.FullDocument)
	}
	// Work in flight when Close is called can still be committed, and is
	// saved at once.
	if err := s2.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Commit(ev.ID); err != nil {
		t.Fatalf("Commit after Close: %v", err)
	}
	if got := store.lastSaved(); !got.Equal(ev.ID) && !got.Equal(s2.ResumeToken()) {
		t.Fatalf("Commit after Close saved %v, want event 4's position %v", got, ev.ID)
	}
}

// With ManualCommit, the postBatchResumeToken of an idle stream is saved
// while no event is in flight; with one in flight, it is saved only with
// the commit of that event.
func TestManualCommitIdleCheckpoints(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", ManualCommit: true, CheckpointEvery: 1, CheckpointInterval: time.Nanosecond},
		options.ChangeStream().SetMaxAwaitTime(10*time.Millisecond))
	elsewhere := f.db.Collection("elsewhere")
	// idleUntilMoved writes outside the stream and polls with TryNext
	// until the stream's resume point moved past from.
	idleUntilMoved := func(from stream.Token) stream.Token {
		t.Helper()
		if _, err := elsewhere.InsertOne(f.ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
		for s.ResumeToken().Equal(from) {
			if _, ok, err := s.TryNext(f.ctx); err != nil || ok {
				t.Fatalf("TryNext = %v, %v; want no event", ok, err)
			}
		}
		return s.ResumeToken()
	}

	f.insert(t, Order{ID: 1})
	ev := nextOrder(t, f.ctx, s)
	before := len(store.saved()) // idle tokens before event 1 may be saved
	idle := idleUntilMoved(s.ResumeToken())
	if got := store.saved(); len(got) != before {
		t.Fatalf("saved %v while event 1 was in flight", got[before:])
	}
	if st := s.Stats(); st.InFlight != 1 || !st.CaughtUp {
		t.Errorf("Stats: InFlight %d, CaughtUp %v; want 1, true", st.InFlight, st.CaughtUp)
	}
	if err := s.Commit(ev.ID); err != nil {
		t.Fatal(err)
	}
	if got := store.lastSaved(); !got.Equal(idle) {
		t.Fatalf("committing event 1 saved %v, want the idle token after it %v", got, idle)
	}
	// Nothing in flight: idle tokens are saved as they come.
	idle = idleUntilMoved(idle)
	if got := store.lastSaved(); !got.Equal(idle) {
		t.Fatalf("idle with nothing in flight: saved %v, want %v", got, idle)
	}
	// The current ResumeToken, moved by an idle token after the last
	// event delivered, commits that event and the idle token.
	f.insert(t, Order{ID: 2})
	nextIDs(t, f, s, 2)
	idle = idleUntilMoved(s.ResumeToken())
	if err := s.Commit(s.ResumeToken()); err != nil {
		t.Fatalf("Commit(ResumeToken()) with event 2 in flight: %v", err)
	}
	if got := store.lastSaved(); !got.Equal(idle) || s.Stats().InFlight != 0 {
		t.Fatalf("saved %v with %d in flight, want %v and none", got, s.Stats().InFlight, idle)
	}
}
