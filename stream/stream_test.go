package stream_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func watchOrders(t *testing.T, f *fixture, csOpts ...options.Lister[options.ChangeStreamOptions]) *stream.Stream[stream.Event[Order]] {
	t.Helper()
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, nil, csOpts...)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func nextOrder(t *testing.T, ctx context.Context, s *stream.Stream[stream.Event[Order]]) stream.Event[Order] {
	t.Helper()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func TestNextDecodesInserts(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	want := []Order{{1, "tea", 2}, {2, "cake", 1}}
	f.insert(t, want...)
	for _, w := range want {
		ev := nextOrder(t, f.ctx, s)
		if ev.OperationType != stream.OpInsert || ev.FullDocument == nil || *ev.FullDocument != w {
			t.Fatalf("event = %+v, want insert of %+v", ev, w)
		}
		if ev.NS.DB != f.db.Name() || ev.NS.Coll != "orders" {
			t.Errorf("NS = %v", ev.NS)
		}
		if ev.ID.IsZero() || ev.ClusterTime.IsZero() || ev.WallTime.IsZero() {
			t.Errorf("ID %v, ClusterTime %v, WallTime %v: want all set", ev.ID, ev.ClusterTime, ev.WallTime)
		}
		if id := ev.DocumentKey.Lookup("_id").AsInt64(); id != int64(w.ID) {
			t.Errorf("DocumentKey = %v", ev.DocumentKey)
		}
	}
	if !s.Alive() {
		t.Error("Alive() = false on an open stream")
	}
}

// Prose test 1: the stream tracks the last resume token, and each token
// resumes right after its event.
func TestProse1TracksResumeToken(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	var toks []stream.Token
	prev := s.ResumeToken()
	for i := 1; i <= 3; i++ {
		ev := nextOrder(t, f.ctx, s)
		tok := s.ResumeToken()
		if tok.IsZero() || tok.Equal(prev) {
			t.Fatalf("after event %d: ResumeToken %v did not advance from %v", i, tok, prev)
		}
		ct, err := tok.ClusterTime()
		if err != nil {
			t.Fatalf("ClusterTime: %v", err)
		}
		if ct.Before(ev.ClusterTime) {
			t.Errorf("token time %v before event time %v", ct, ev.ClusterTime)
		}
		toks = append(toks, tok)
		prev = tok
	}
	for i, tok := range toks[:2] {
		r, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, nil, options.ChangeStream().SetResumeAfter(tok.Raw()))
		if err != nil {
			t.Fatal(err)
		}
		ev := nextOrder(t, f.ctx, r)
		if ev.FullDocument.ID != i+2 {
			t.Errorf("resumed after event %d: got order %d, want %d", i+1, ev.FullDocument.ID, i+2)
		}
		_ = r.Close(f.ctx)
	}
}

func TestNextDeadlineKeepsStream(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Millisecond)
		_, err := s.Next(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next %d with a short deadline: %v, want context.DeadlineExceeded", i, err)
		}
		if !s.Alive() {
			t.Fatal("the stream died with the caller's deadline")
		}
	}
	f.insert(t, Order{ID: 7, Item: "jam"})
	ev := nextOrder(t, f.ctx, s)
	if ev.FullDocument.ID != 7 {
		t.Fatalf("got %+v, want order 7", ev.FullDocument)
	}
	f.insert(t, Order{ID: 8})
	if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 8 {
		t.Fatalf("got %+v, want order 8", ev.FullDocument)
	}
	if n := len(f.mon.commands("aggregate")); n != 1 {
		t.Errorf("%d aggregate commands: the driver's stream was resumed or rebuilt", n)
	}
}

func TestTryNext(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f, options.ChangeStream().SetMaxAwaitTime(50*time.Millisecond))
	ev, ok, err := s.TryNext(f.ctx)
	if ok || err != nil || ev.OperationType != "" {
		t.Fatalf("TryNext on a quiet stream = %+v, %v, %v; want zero, false, nil", ev, ok, err)
	}
	f.insert(t, Order{ID: 1})
	before := len(f.mon.commands("getMore"))
	ev, ok, err = s.TryNext(f.ctx)
	if !ok || err != nil || ev.FullDocument.ID != 1 {
		t.Fatalf("TryNext after an insert = %+v, %v, %v", ev, ok, err)
	}
	if n := len(f.mon.commands("getMore")) - before; n != 1 {
		t.Errorf("TryNext sent %d getMores, want 1", n)
	}
	before = len(f.mon.commands("getMore"))
	if _, ok, err := s.TryNext(f.ctx); ok || err != nil {
		t.Fatalf("TryNext with nothing new = %v, %v", ok, err)
	}
	if n := len(f.mon.commands("getMore")) - before; n > 1 {
		t.Errorf("TryNext sent %d getMores, want at most 1", n)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.Alive() {
		t.Error("Alive() after Close")
	}
	if _, err := s.Next(f.ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.TryNext(f.ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("TryNext after Close: %v, want ErrClosed", err)
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors open after Close", f.srv.OpenCursors())
	}
}

func TestCloseEndsBlockedAll(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1})
	type result struct {
		n    int
		errs []error
	}
	done := make(chan result)
	gotFirst := make(chan struct{})
	go func() {
		var r result
		for _, err := range s.All(f.ctx) {
			if err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			r.n++
			if r.n == 1 {
				close(gotFirst)
			}
		}
		done <- r
	}()
	<-gotFirst
	// The loop is now blocked waiting for the server.
	f.mon.waitStarted(t, f.ctx, "getMore", 1)
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-done:
		if r.n != 1 || len(r.errs) != 0 {
			t.Fatalf("loop saw %d events and errors %v; want 1 event, no error", r.n, r.errs)
		}
	case <-f.ctx.Done():
		t.Fatal("the range loop did not end after Close")
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors open after Close", f.srv.OpenCursors())
	}
}

func TestCloseEndsBlockedNext(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	errc := make(chan error)
	go func() {
		_, err := s.Next(f.ctx)
		errc <- err
	}()
	f.mon.waitStarted(t, f.ctx, "getMore", 1)
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("blocked Next returned %v, want ErrClosed", err)
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors open after Close", f.srv.OpenCursors())
	}
}

// Close while a getMore waits for the server (a Next whose ctx ended
// leaves it in flight, as Process's intake does when Process stops) ends
// it by killing its cursor from another connection, as a real server
// allows, instead of cancelling the call: the driver keeps the connection
// the getMore ran on (cancelling made it close the connection, and the
// next operation open and fill a new one), and no server cursor is left.
func TestCloseKeepsTheConnectionOfAWaitingGetMore(t *testing.T) {
	var closed atomic.Int64
	f := newFixture(t, options.Client().SetPoolMonitor(&event.PoolMonitor{Event: func(e *event.PoolEvent) {
		if e.Type == event.ConnectionClosed {
			closed.Add(1)
		}
	}}))
	s := watchOrders(t, f, options.ChangeStream().SetMaxAwaitTime(30*time.Second))
	if _, err := f.coll.InsertOne(f.ctx, Order{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(f.ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	n := len(f.mon.commands("getMore"))
	go func() {
		f.mon.waitStarted(t, f.ctx, "getMore", n+1)
		cancel()
	}()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v, want context.Canceled", err)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c := closed.Load(); c != 0 {
		t.Errorf("%d connections closed by Close; want the pool to keep them", c)
	}
	if len(f.mon.commands("killCursors")) == 0 {
		t.Error("no killCursors sent")
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors open after Close", f.srv.OpenCursors())
	}
}

func TestBreakClosesCursor(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	for ev, err := range s.All(f.ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.FullDocument.ID == 1 {
			break
		}
	}
	if s.Alive() {
		t.Error("Alive() after the loop ended")
	}
	if len(f.mon.commands("killCursors")) == 0 {
		t.Error("no killCursors after break")
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors open after break", f.srv.OpenCursors())
	}
}

func TestAllIsSingleUse(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1})
	for range s.All(f.ctx) {
		break
	}
	var errs []error
	for _, err := range s.All(f.ctx) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], stream.ErrSingleUse) {
		t.Fatalf("second range yielded %v, want one ErrSingleUse", errs)
	}
}

// BadOrder cannot hold an item that is not a string.
type BadQty struct {
	ID  int `bson:"_id"`
	Qty int `bson:"qty"`
}

func TestDecodeErrorIsYieldedAndIterationGoesOn(t *testing.T) {
	t.Run("Event", func(t *testing.T) {
		f := newFixture(t)
		s, err := stream.Watch[stream.Event[BadQty]](f.ctx, f.coll, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkDecodeErrorThenEvent(t, f, s.All(f.ctx), func(ev stream.Event[BadQty]) int { return ev.FullDocument.ID })
	})
	t.Run("registry", func(t *testing.T) {
		type plain struct {
			FullDocument BadQty `bson:"fullDocument"`
		}
		f := newFixture(t)
		s, err := stream.Watch[plain](f.ctx, f.coll, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkDecodeErrorThenEvent(t, f, s.All(f.ctx), func(ev plain) int { return ev.FullDocument.ID })
	})
}

func checkDecodeErrorThenEvent[T any](t *testing.T, f *fixture, seq func(func(T, error) bool), id func(T) int) {
	t.Helper()
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "qty", Value: "many"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}, {Key: "qty", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ev, err := range seq {
		n++
		if n == 1 {
			var de *stream.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("first pair: %v, want a *DecodeError", err)
			}
			if de.Token.IsZero() || de.Raw.Lookup("fullDocument", "qty").StringValue() != "many" {
				t.Errorf("DecodeError lacks the event or its token: %+v", de)
			}
			if de.Unwrap() == nil {
				t.Error("DecodeError has no cause")
			}
			continue
		}
		if err != nil {
			t.Fatalf("second pair: %v", err)
		}
		if id(ev) != 2 {
			t.Fatalf("second event is for %d, want 2", id(ev))
		}
		break
	}
	if n != 2 {
		t.Fatalf("loop ran %d times, want 2", n)
	}
}

func TestWatchTargets(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		target stream.Watcher
	}{
		{"collection", f.coll},
		{"database", f.db},
		{"client", f.client},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := stream.Watch[stream.Event[Order]](f.ctx, tt.target, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.insert(t, Order{ID: 100 + i})
			ev := nextOrder(t, f.ctx, s)
			if ev.FullDocument.ID != 100+i || ev.NS.DB != f.db.Name() {
				t.Errorf("event %+v", ev)
			}
			// Interrupt a blocked call, then Close: the cursor must die.
			ctx, cancel := context.WithTimeout(f.ctx, 20*time.Millisecond)
			_, _ = s.Next(ctx)
			cancel()
			if err := s.Close(f.ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if f.srv != nil && f.srv.OpenCursors() != 0 {
				t.Errorf("%d cursors open after Close", f.srv.OpenCursors())
			}
		})
	}
}

func TestWatchRejectsNilTarget(t *testing.T) {
	var coll *mongo.Collection
	for _, target := range []stream.Watcher{nil, coll} {
		if _, err := stream.Watch[bson.Raw](context.Background(), target, nil, nil); err == nil {
			t.Errorf("Watch(%T(nil)) succeeded", target)
		}
	}
}

// No goroutine of the stream outlives Close, also when a call was
// interrupted and its wait goes on in the background.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := streamGoroutines()
	f := newFixture(t)
	s := watchOrders(t, f)
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Millisecond)
	_, err := s.Next(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v", err)
	}
	if n := newGoroutines(before, streamGoroutines()); n == 0 {
		t.Fatal("no background wait after the interrupted Next; the test would prove nothing")
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := leftGoroutines(before); n != 0 {
		t.Fatalf("%d stream goroutines after Close", n)
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors after Close", f.srv.OpenCursors())
	}
}

// streamGoroutines returns the ids of the goroutines running code of
// package stream, other than test functions. Tests compare it with a
// snapshot taken before: streams that other tests abandoned on purpose
// (crashed consumers) may still be winding down.
func streamGoroutines() map[string]bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	ids := map[string]bool{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "changestream/stream.(*Stream") || strings.Contains(g, "stream_test.Test") {
			continue
		}
		// "goroutine 123 [state]:"
		if f := strings.Fields(g); len(f) > 1 && f[0] == "goroutine" {
			ids[f[1]] = true
		}
	}
	return ids
}

// leftGoroutines returns how many stream goroutines not in before are
// still running after Close. A goroutine that returned from its
// WaitGroup.Done, which Close waits for, may still show its frames for a
// moment: the check yields the processor a bounded number of times, so
// that such a goroutine ends, before it counts what is left.
func leftGoroutines(before map[string]bool) int {
	n := newGoroutines(before, streamGoroutines())
	for i := 0; i < 1000 && n != 0; i++ {
		runtime.Gosched()
		n = newGoroutines(before, streamGoroutines())
	}
	return n
}

// newGoroutines returns how many of now's goroutines are not in before.
func newGoroutines(before, now map[string]bool) int {
	n := 0
	for id := range now {
		if !before[id] {
			n++
		}
	}
	return n
}
