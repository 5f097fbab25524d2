package stream_test

import (
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
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
	// Cluster times have whole seconds: the lag of a fresh event is under
	// two seconds and never negative.
	wantLag := before.Sub(time.Unix(int64(ev.ClusterTime.T), 0))
	if st.Lag < 0 || st.Lag < wantLag-time.Second || st.Lag > wantLag+time.Second {
		t.Errorf("Stats().Lag = %v, want about %v", st.Lag, wantLag)
	}
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
