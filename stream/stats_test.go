package stream_test

import (
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Stats counts events, the driver's resumes and the stream's new watches,
// and reports the last token's cluster time, the lag and the checkpoint.
func TestStats(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	store := &stream.MemoryStore{}
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointEvery: 2, CheckpointInterval: hour,
		RewatchDelay: time.Millisecond, RewatchMaxDelay: time.Millisecond})
	if st := s.Stats(); st.Events != 0 || st.Resumes != 0 || st.Rewatches != 0 || !st.Checkpoint.Token.IsZero() {
		t.Errorf("a new stream's Stats: %+v", st)
	}
	f.insert(t, Order{ID: 1})
	nextIDs(t, f, s, 1)
	// The driver resumes after CursorNotFound ...
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 43, ErrorLabels: []string{}, Times: 1})
	f.insert(t, Order{ID: 2})
	nextIDs(t, f, s, 2)
	// ... but not after an error without the resumable label: the stream
	// watches again.
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
	f.insert(t, Order{ID: 3})
	ev := nextOrder(t, f.ctx, s)
	before := time.Now()
	st := s.Stats()
	if st.Events != 3 || st.Resumes != 1 || st.Rewatches != 1 {
		t.Errorf("Stats: %d events, %d resumes, %d rewatches; want 3, 1, 1", st.Events, st.Resumes, st.Rewatches)
	}
	// Each event came alone: in a getMore's reply, in the first batch of
	// the driver's resume, in the first batch of the new watch.
	if st.Batches != 3 || st.LastBatch != 1 {
		t.Errorf("Stats: %d batches, the last of %d; want 3 of 1", st.Batches, st.LastBatch)
	}
	// The Nexts of events 2 and 3 committed events 1 and 2; the second
	// commit made CheckpointEvery and saved.
	if st.Committed != 2 || st.CheckpointSaves != 1 || st.CheckpointFailures != 0 {
		t.Errorf("Stats: %d committed, %d saves, %d failures; want 2, 1, 0", st.Committed, st.CheckpointSaves, st.CheckpointFailures)
	}
	if !st.ClusterTime.Equal(ev.ClusterTime) {
		t.Errorf("Stats().ClusterTime = %v, want the last event's %v", st.ClusterTime, ev.ClusterTime)
	}
	// Lag is measured against the newest cluster time the server
	// reported, in whole seconds: a fresh event is at most a second behind.
	wantLag := time.Duration(st.NewestClusterTime.T-ev.ClusterTime.T) * time.Second
	if st.NewestClusterTime.Before(ev.ClusterTime) || st.Lag != wantLag || st.Lag > time.Second || st.CaughtUp {
		t.Errorf("Stats(): Lag %v, newest %v, caught up %v; want the lag of event 3 (%v) against the newest time",
			st.Lag, st.NewestClusterTime, st.CaughtUp, ev.ClusterTime)
	}
	_ = before
	// CheckpointEvery 2: the Next of event 3 saved the position after 2.
	cp, err := store.Load(f.ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Checkpoint.Token.Equal(cp.Token) || st.Checkpoint.UpdatedAt.IsZero() {
		t.Errorf("Stats().Checkpoint = %v, want the saved %v", st.Checkpoint.Token, cp.Token)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); !st.Checkpoint.Token.Equal(s.ResumeToken()) || st.Events != 3 || st.Committed != 3 || st.CheckpointSaves != 2 {
		t.Errorf("after Close: checkpoint %v, %d events, %d committed, %d saves; want %v, 3, 3, 2",
			st.Checkpoint.Token, st.Events, st.Committed, st.CheckpointSaves, s.ResumeToken())
	}
}

// An idle stream that is caught up has no lag, however old its last event;
// a stream behind the server has the lag of its position against the
// newest cluster time the server reported, and its committed position may
// lag more.
func TestStatsLag(t *testing.T) {
	f := newFixture(t)
	s := watchWith(t, f, &stream.Options{Store: &stream.MemoryStore{}, Name: "orders", ManualCommit: true},
		options.ChangeStream().SetMaxAwaitTime(10*time.Millisecond))
	f.insert(t, Order{ID: 1})
	ev1 := nextOrder(t, f.ctx, s)
	// Cluster times have whole seconds: a later second is needed to see a
	// lag at all. This waits for the clock, not for another goroutine.
	time.Sleep(time.Until(time.Unix(int64(ev1.ClusterTime.T)+1, 0)))
	f.insert(t, Order{ID: 2}, Order{ID: 3})
	ev2 := nextOrder(t, f.ctx, s) // the reply bringing 2 and 3 reported their time
	st := s.Stats()
	if st.CaughtUp || st.InFlight != 2 {
		t.Errorf("behind: CaughtUp %v, InFlight %d; want false, 2", st.CaughtUp, st.InFlight)
	}
	if !st.ClusterTime.Equal(ev2.ClusterTime) && st.ClusterTime.Before(ev2.ClusterTime) {
		t.Errorf("ClusterTime %v, want event 2's %v", st.ClusterTime, ev2.ClusterTime)
	}
	if want := time.Duration(st.NewestClusterTime.T-st.ClusterTime.T) * time.Second; st.Lag != want {
		t.Errorf("Lag %v, want newest %v minus position %v = %v", st.Lag, st.NewestClusterTime, st.ClusterTime, want)
	}
	// Nothing committed since the idle token before event 1: the committed
	// position is at least a second behind event 2.
	if st.CommittedClusterTime.After(ev1.ClusterTime) ||
		st.CommittedLag != time.Duration(st.NewestClusterTime.T-st.CommittedClusterTime.T)*time.Second {
		t.Errorf("committed at %v with lag %v; want at or before event 1 (%v), newest %v", st.CommittedClusterTime, st.CommittedLag, ev1.ClusterTime, st.NewestClusterTime)
	}
	if ev2.ClusterTime.T > ev1.ClusterTime.T && st.CommittedLag < time.Second {
		t.Errorf("CommittedLag %v, want at least the second between events 1 and 2", st.CommittedLag)
	}

	// Consume and commit everything, then idle until the server says
	// there is nothing more.
	ev3 := nextOrder(t, f.ctx, s)
	if err := s.Commit(ev3.ID); err != nil {
		t.Fatal(err)
	}
	for !s.Stats().CaughtUp {
		if _, ok, err := s.TryNext(f.ctx); err != nil || ok {
			t.Fatalf("TryNext = %v, %v; want no event", ok, err)
		}
	}
	st = s.Stats()
	if st.Lag != 0 || st.CommittedLag != 0 || st.InFlight != 0 || st.ClusterTime.Before(ev3.ClusterTime) {
		t.Errorf("idle and caught up: Lag %v, CommittedLag %v, InFlight %d, ClusterTime %v; want 0, 0, 0, at least event 3's %v",
			st.Lag, st.CommittedLag, st.InFlight, st.ClusterTime, ev3.ClusterTime)
	}
}
