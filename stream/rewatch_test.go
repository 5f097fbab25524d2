package stream_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// logCapture is a slog handler that keeps the records it receives and
// wakes waiters on each.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
	wake chan struct{}
}

func newLogCapture() *logCapture { return &logCapture{wake: make(chan struct{})} }

func (l *logCapture) logger() *slog.Logger { return slog.New(l) }

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

// count returns how many records have message msg.
func (l *logCapture) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// wait waits until n records have message msg.
func (l *logCapture) wait(t *testing.T, ctx context.Context, msg string, n int) {
	t.Helper()
	for {
		l.mu.Lock()
		wake := l.wake
		l.mu.Unlock()
		if l.count(msg) >= n {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for %d log lines %q: %v", n, msg, ctx.Err())
		}
	}
}

const (
	msgRewatch   = "changestream: watching again"
	msgRewatched = "changestream: watching again succeeded"
)

// fastRewatch are options that retry at once, for tests.
func fastRewatch(logs *logCapture) *stream.Options {
	return &stream.Options{Logger: logs.logger(), RewatchDelay: 1e6, RewatchMaxDelay: 2e6}
}

func watchWith(t *testing.T, f *fixture, o *stream.Options, csOpts ...options.Lister[options.ChangeStreamOptions]) *stream.Stream[stream.Event[Order]] {
	t.Helper()
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o, csOpts...)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// nextIDs reads n events and checks their orders' ids are want.
func nextIDs(t *testing.T, f *fixture, s *stream.Stream[stream.Event[Order]], want ...int) {
	t.Helper()
	for _, w := range want {
		ev := nextOrder(t, f.ctx, s)
		if ev.FullDocument == nil || ev.FullDocument.ID != w {
			t.Fatalf("event %s %v, want the insert of order %d", ev.OperationType, ev.FullDocument, w)
		}
	}
}

// Each fault in the table is mended without an error or a gap: by the
// driver's own resume, or by a new watch from the last delivered token.
func TestRewatchMendsFailures(t *testing.T) {
	none := []string{}
	tests := []struct {
		name      string
		faults    []mongotest.FailPoint
		restart   bool
		resumes   int64 // resumes of the driver
		rewatches int64 // new watches of the Stream
		// either: one of the two mends it. After a network error the
		// driver clears its connection pool; when its resume races with
		// that, it fails with a PoolClearedError and the Stream mends it.
		either bool
	}{
		{name: "closed connection on getMore", resumes: 1, either: true,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, CloseConnection: true, Times: 1}}},
		{name: "resumable label", resumes: 1,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, ErrorCode: 91, ErrorLabels: []string{"ResumableChangeStreamError"}, Times: 1}}},
		{name: "CursorNotFound", resumes: 1,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, ErrorCode: 43, ErrorLabels: none, Times: 1}}},
		{name: "HostUnreachable without label", rewatches: 1,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: none, Times: 1}}},
		{name: "NotWritablePrimary without label", rewatches: 1,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, ErrorCode: 10107, ErrorLabels: none, Times: 1}}},
		{name: "InterruptedAtShutdown without label", rewatches: 1,
			faults: []mongotest.FailPoint{{Commands: []string{"getMore"}, ErrorCode: 11600, ErrorLabels: none, Times: 1}}},
		{name: "failed resume of the driver", rewatches: 1, faults: []mongotest.FailPoint{
			{AfterCursorCheckout: true, CloseConnection: true, Times: 1},
			// The driver's resume and its one retry.
			{Commands: []string{"aggregate"}, CloseConnection: true, Times: 2},
		}},
		{name: "restart", restart: true, resumes: 1, either: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.needMongotest(t, "failpoints")
			logs := newLogCapture()
			s := watchWith(t, f, fastRewatch(logs))
			f.insert(t, Order{ID: 1})
			nextIDs(t, f, s, 1)
			tok := s.ResumeToken()
			aggs := len(f.mon.commands("aggregate"))
			for _, fp := range tt.faults {
				f.srv.FailCommand(fp)
			}
			if tt.restart {
				f.srv.Restart()
			}
			f.insert(t, Order{ID: 2}, Order{ID: 3})
			nextIDs(t, f, s, 2, 3)
			st := s.Stats()
			switch {
			case tt.either && st.Resumes+st.Rewatches != 1:
				t.Errorf("Stats: %d resumes, %d rewatches; want one in all", st.Resumes, st.Rewatches)
			case !tt.either && (st.Resumes != tt.resumes || st.Rewatches != tt.rewatches):
				t.Errorf("Stats: %d resumes, %d rewatches; want %d, %d", st.Resumes, st.Rewatches, tt.resumes, tt.rewatches)
			}
			if st.Events != 3 {
				t.Errorf("Stats: %d events, want 3", st.Events)
			}
			if got := int64(logs.count(msgRewatched)); got != st.Rewatches {
				t.Errorf("%d log lines %q, want %d", got, msgRewatched, st.Rewatches)
			}
			all := f.mon.commands("aggregate")
			if len(all) <= aggs {
				t.Fatal("no aggregate after the fault")
			}
			// Whoever resumed, it resumed after the last delivered event.
			last := changeStreamStage(t, all[len(all)-1])
			if got := last.Lookup("resumeAfter"); !bytes.Equal(got.Value, tok.Raw()) {
				t.Errorf("resumed with resumeAfter %v, want %v", got, tok)
			}
			if last.Lookup("startAfter").Type != 0 {
				t.Errorf("resumed with startAfter: %v", last)
			}
			if !s.Alive() {
				t.Error("Alive() = false")
			}
			if err := s.Close(f.ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
			if n := f.srv.OpenCursors(); n != 0 {
				t.Errorf("%d server cursors left after Close", n)
			}
		})
	}
}

// The pipeline and every driver option but the resume option are the same
// on a new watch.
func TestRewatchKeepsPipelineAndOptions(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	logs := newLogCapture()
	pipeline := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "operationType", Value: "insert"}}}}}
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, pipeline, fastRewatch(logs),
		options.ChangeStream().SetFullDocument(options.UpdateLookup).SetBatchSize(7).SetComment("rewatch"),
		options.ChangeStream().SetStartAtOperationTime(&bson.Timestamp{T: 1, I: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1})
	nextIDs(t, f, s, 1)
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
	f.insert(t, Order{ID: 2})
	nextIDs(t, f, s, 2)
	aggs := f.mon.commands("aggregate")
	if len(aggs) != 2 {
		t.Fatalf("%d aggregates, want 2", len(aggs))
	}
	first, second := aggs[0], aggs[1]
	for _, key := range []string{"pipeline.1", "cursor", "comment"} {
		a, b := first.Lookup(splitKey(key)...), second.Lookup(splitKey(key)...)
		if !a.Equal(b) {
			t.Errorf("%s changed: %v then %v", key, a, b)
		}
	}
	st1, st2 := changeStreamStage(t, first), changeStreamStage(t, second)
	if !st1.Lookup("fullDocument").Equal(st2.Lookup("fullDocument")) {
		t.Errorf("fullDocument changed: %v then %v", st1, st2)
	}
	if st2.Lookup("startAtOperationTime").Type != 0 || st2.Lookup("resumeAfter").Type == 0 {
		t.Errorf("new watch: %v, want resumeAfter only", st2)
	}
}

func splitKey(k string) []string {
	var out []string
	start := 0
	for i := 0; i < len(k); i++ {
		if k[i] == '.' {
			out = append(out, k[start:i])
			start = i + 1
		}
	}
	return append(out, k[start:])
}

// Backoff gives up after RewatchAttempts, logging each attempt; the error
// keeps the server's.
func TestRewatchGivesUp(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	logs := newLogCapture()
	o := fastRewatch(logs)
	o.RewatchAttempts = 3
	s := watchWith(t, f, o)
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore", "aggregate"}, ErrorCode: 6, ErrorLabels: []string{}})
	_, err := s.Next(f.ctx)
	var se mongo.ServerError
	if err == nil || !errors.As(err, &se) || !se.HasErrorCode(6) {
		t.Fatalf("Next: %v, want the server's error 6 after giving up", err)
	}
	if n := logs.count(msgRewatch); n != 3 {
		t.Errorf("%d attempts logged, want 3", n)
	}
	if s.Alive() {
		t.Error("Alive() after giving up")
	}
	if _, err2 := s.Next(f.ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Next: %v, want the same error", err2)
	}
}

// Close interrupts a backoff wait at once.
func TestRewatchCloseDuringBackoff(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	logs := newLogCapture()
	o := &stream.Options{Logger: logs.logger(), RewatchDelay: 1 << 40, RewatchMaxDelay: 1 << 40, RewatchTimeout: 1 << 42}
	s := watchWith(t, f, o)
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore", "aggregate"}, ErrorCode: 6, ErrorLabels: []string{}})
	done := make(chan error, 1)
	go func() {
		_, err := s.Next(context.Background())
		done <- err
	}()
	logs.wait(t, f.ctx, msgRewatch, 2) // the second attempt waits ~18 minutes
	if err := s.Close(f.ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Next: %v, want ErrClosed", err)
	}
}

// A stream opened with startAfter keeps startAfter until its first event
// (spec prose test 17), then uses resumeAfter (prose test 18). The faults
// are errors the driver does not resume, so the new watch is the Stream's.
func TestProse17And18StartAfterOnRewatch(t *testing.T) {
	tests := []struct {
		name       string
		invalidate bool // start after an invalidate event, which only startAfter accepts
		events     int  // events delivered before the fault
		want       string
	}{
		{name: "17: no event yet", want: "startAfter"},
		{name: "17: no event yet, after an invalidate", invalidate: true, want: "startAfter"},
		{name: "18: one event", events: 1, want: "resumeAfter"},
		{name: "18: one event, after an invalidate", invalidate: true, events: 1, want: "resumeAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.needMongotest(t, "failpoints")
			first := watchOrders(t, f)
			f.insert(t, Order{ID: 100})
			ev := nextOrder(t, f.ctx, first)
			start := ev.ID
			if tt.invalidate {
				if err := f.coll.Drop(f.ctx); err != nil {
					t.Fatal(err)
				}
				nextOrder(t, f.ctx, first) // drop
				start = nextOrder(t, f.ctx, first).ID
			}
			s := watchWith(t, f, fastRewatch(newLogCapture()), options.ChangeStream().SetStartAfter(start.Raw()))
			id := 1
			for range tt.events {
				f.insert(t, Order{ID: id})
				nextIDs(t, f, s, id)
				id++
			}
			tok := s.ResumeToken()
			before := len(f.mon.commands("aggregate"))
			f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
			f.insert(t, Order{ID: id})
			nextIDs(t, f, s, id)
			aggs := f.mon.commands("aggregate")
			if len(aggs) != before+1 {
				t.Fatalf("%d aggregates after the fault, want 1", len(aggs)-before)
			}
			st := changeStreamStage(t, aggs[len(aggs)-1])
			other := map[string]string{"startAfter": "resumeAfter", "resumeAfter": "startAfter"}[tt.want]
			if got := st.Lookup(tt.want); !bytes.Equal(got.Value, tok.Raw()) {
				t.Errorf("new watch %v: %s = %v, want %v", st, tt.want, got, tok)
			}
			if st.Lookup(other).Type != 0 {
				t.Errorf("new watch %v has %s", st, other)
			}
		})
	}
}

// With ContinueAfterInvalidate the invalidate event is delivered, then the
// stream goes on with startAfter its token.
func TestContinueAfterInvalidate(t *testing.T) {
	f := newFixture(t)
	o := fastRewatch(newLogCapture())
	o.ContinueAfterInvalidate = true
	s := watchWith(t, f, o)
	f.insert(t, Order{ID: 1})
	if err := f.coll.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 2}) // recreates the collection
	nextIDs(t, f, s, 1)
	var inv stream.Event[Order]
	for _, want := range []stream.OperationType{stream.OpDrop, stream.OpInvalidate} {
		inv = nextOrder(t, f.ctx, s)
		if inv.OperationType != want {
			t.Fatalf("event %q, want %q", inv.OperationType, want)
		}
	}
	nextIDs(t, f, s, 2)
	if !s.Alive() {
		t.Error("Alive() = false after going on")
	}
	if st := s.Stats(); st.Rewatches != 1 || st.Events != 4 {
		t.Errorf("Stats: %d rewatches, %d events; want 1, 4", st.Rewatches, st.Events)
	}
	aggs := f.mon.commands("aggregate")
	st := changeStreamStage(t, aggs[len(aggs)-1])
	if got := st.Lookup("startAfter"); !bytes.Equal(got.Value, inv.ID.Raw()) {
		t.Errorf("new watch %v, want startAfter the invalidate's token %v", st, inv.ID)
	}
}
