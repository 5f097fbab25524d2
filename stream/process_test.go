package stream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// startProcess runs stream.Process in a goroutine; the channel receives
// what it returned.
func startProcess[T any](ctx context.Context, s *stream.Stream[T], handler func(context.Context, T) error, o *stream.ProcessOptions[T]) <-chan error {
	done := make(chan error, 1)
	go func() { done <- stream.Process(ctx, s, handler, o) }()
	return done
}

// processReturned waits for Process to return.
func processReturned(t *testing.T, ctx context.Context, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatalf("Process did not return: %v", ctx.Err())
		return nil
	}
}

// receive waits for a value on ch.
func receive[V any](t *testing.T, ctx context.Context, ch <-chan V) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		var zero V
		t.Fatalf("waiting: %v", ctx.Err())
		return zero
	}
}

// processGoroutines counts the goroutines running Process's code.
func processGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "changestream/stream.(*processor") {
			n++
		}
	}
	return n
}

// checkResumesAt opens the stream again from store and checks that its
// first event is the insert of order want.
func checkResumesAt(t *testing.T, f *fixture, o *stream.Options, want int) {
	t.Helper()
	s := watchWith(t, f, o)
	defer s.Close(f.ctx)
	nextIDs(t, f, s, want)
}

// Events of one document are handled one at a time in stream order while
// handlers of other documents run alongside, with random handler delays;
// the checkpoint is the last event once all are handled.
func TestProcessKeyOrder(t *testing.T) {
	f := newFixture(t)
	o := &stream.Options{Store: &stream.MemoryStore{}, Name: "orders"}
	s := watchWith(t, f, o)
	const keys, rounds = 20, 12
	for k := range keys {
		f.insert(t, Order{ID: k, Qty: 0})
	}
	for r := 1; r < rounds; r++ {
		for k := range keys {
			if _, err := f.coll.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: k}}, Order{ID: k, Qty: r}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	last := map[int]int{}
	running, maxRunning, handled := 0, 0, 0
	all := make(chan struct{})
	handler := func(_ context.Context, ev stream.Event[Order]) error {
		d := ev.FullDocument
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		want, seen := last[d.ID]+1, true
		if _, ok := last[d.ID]; !ok {
			want, seen = 0, false
		}
		if d.Qty != want {
			t.Errorf("order %d: version %d handled, want %d (seen before: %v)", d.ID, d.Qty, want, seen)
		}
		last[d.ID] = d.Qty
		mu.Unlock()
		time.Sleep(time.Duration(rand.N(300)) * time.Microsecond) // the handler's own work
		mu.Lock()
		running--
		if handled++; handled == keys*rounds {
			close(all)
		}
		mu.Unlock()
		return nil
	}
	done := startProcess(f.ctx, s, handler, &stream.ProcessOptions[stream.Event[Order]]{Workers: 8})
	receive(t, f.ctx, all)
	if err := s.Close(f.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := processReturned(t, f.ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if maxRunning < 2 || maxRunning > 8 {
		t.Errorf("%d handlers ran at once; want 2 to 8 with 8 workers", maxRunning)
	}
	if n := processGoroutines(); n != 0 {
		t.Errorf("%d goroutines of Process after it returned", n)
	}
	f.insert(t, Order{ID: 1000})
	checkResumesAt(t, f, o, 1000)
}

// A drop event (no documentKey) is a barrier: it is handled after every
// event before it and before any after it, on a database stream.
func TestProcessBarrier(t *testing.T) {
	f := newFixture(t)
	s, err := stream.Watch[bson.Raw](f.ctx, f.db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	other := f.db.Collection("other")
	if _, err := other.InsertOne(f.ctx, Order{ID: 3}); err != nil {
		t.Fatal(err)
	}
	if err := other.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 4}, Order{ID: 5})

	name := func(raw bson.Raw) string {
		op := raw.Lookup("operationType").StringValue()
		if id, ok := raw.Lookup("documentKey", "_id").AsInt64OK(); ok {
			return fmt.Sprint(op, id)
		}
		return op
	}
	taken := make(chan string, 16)
	release1 := make(chan struct{})
	var mu sync.Mutex
	var log []string
	handled := make(chan string, 16)
	handler := func(_ context.Context, raw bson.Raw) error {
		n := name(raw)
		mu.Lock()
		log = append(log, "start "+n)
		mu.Unlock()
		if n == "insert1" {
			<-release1
		}
		mu.Lock()
		log = append(log, "end "+n)
		mu.Unlock()
		handled <- n
		return nil
	}
	o := &stream.ProcessOptions[bson.Raw]{Workers: 4, Key: func(raw bson.Raw) (string, bool) {
		taken <- name(raw) // the default key, with a word when each event is taken
		return stream.DocumentKeyOf(raw)
	}}
	done := startProcess(f.ctx, s, handler, o)
	// Hold insert1 until the stream delivered everything up to insert5:
	// the drop is then waiting for it.
	for receive(t, f.ctx, taken) != "insert5" {
	}
	close(release1)
	for range 6 {
		receive(t, f.ctx, handled)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := processReturned(t, f.ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	pos := map[string]int{}
	for i, l := range log {
		pos[l] = i
	}
	if _, ok := pos["start drop"]; !ok {
		t.Fatalf("no drop event handled: %v", log)
	}
	for _, before := range []string{"end insert1", "end insert2", "end insert3"} {
		if pos[before] > pos["start drop"] {
			t.Errorf("the drop started before %q: %v", before, log)
		}
	}
	for _, after := range []string{"start insert4", "start insert5"} {
		if pos[after] < pos["end drop"] {
			t.Errorf("%q before the drop ended: %v", after, log)
		}
	}
}

// A panicking handler is an error like another: retried, and after
// MaxAttempts panics Process stops with a *HandlerError wrapping
// ErrHandlerPanic, having committed exactly the events before it.
func TestProcessHandlerPanics(t *testing.T) {
	f := newFixture(t)
	o := &stream.Options{Store: &stream.MemoryStore{}, Name: "orders", CheckpointEvery: 1}
	s := watchWith(t, f, o)
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3}, Order{ID: 4}, Order{ID: 5})
	var mu sync.Mutex
	calls := map[int]int{}
	handler := func(_ context.Context, ev stream.Event[Order]) error {
		id := ev.FullDocument.ID
		mu.Lock()
		calls[id]++
		c := calls[id]
		mu.Unlock()
		if id == 2 && c == 1 {
			panic("order 2, first try")
		}
		if id == 4 {
			var m map[string]int
			m["x"] = c // a nil map: a runtime panic on every try
		}
		return nil
	}
	err := stream.Process(f.ctx, s, handler, &stream.ProcessOptions[stream.Event[Order]]{
		Workers: 1, MaxAttempts: 3, RetryDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
	var he *stream.HandlerError
	if !errors.As(err, &he) || !errors.Is(err, stream.ErrHandlerPanic) || he.Attempts != 3 {
		t.Fatalf("Process returned %v; want a *HandlerError of 3 panics", err)
	}
	if id, _ := he.Raw.Lookup("documentKey", "_id").AsInt64OK(); id != 4 {
		t.Errorf("HandlerError.Raw is %v, want the insert of order 4", he.Raw)
	}
	if !strings.Contains(err.Error(), "nil map") {
		t.Errorf("the error does not carry the panic value: %v", err)
	}
	mu.Lock()
	if calls[2] != 2 || calls[5] != 0 {
		t.Errorf("calls %v: want 2 for order 2 (a panic, then success), none for order 5", calls)
	}
	mu.Unlock()
	if s.Alive() {
		t.Error("the stream is alive after Process returned")
	}
	checkResumesAt(t, f, o, 4)
}

// DeadLetter gets the event that failed every attempt (raw, token, error)
// and an event that did not decode, and Process goes on past both.
func TestProcessDeadLetter(t *testing.T) {
	f := newFixture(t)
	o := &stream.Options{Store: &stream.MemoryStore{}, Name: "orders", CheckpointEvery: 1}
	s := watchWith(t, f, o)
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 4}, {Key: "qty", Value: "many"}}); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 5}, Order{ID: 6})
	boom := errors.New("cache server unreachable")
	handled := make(chan int, 16)
	ids := map[int]stream.Token{}
	var mu sync.Mutex
	handler := func(_ context.Context, ev stream.Event[Order]) error {
		id := ev.FullDocument.ID
		mu.Lock()
		ids[id] = ev.ID
		mu.Unlock()
		if id == 3 {
			return boom
		}
		handled <- id
		return nil
	}
	var dead []*stream.HandlerError
	po := &stream.ProcessOptions[stream.Event[Order]]{Workers: 4, MaxAttempts: 2, RetryDelay: time.Millisecond,
		DeadLetter: func(_ context.Context, failed *stream.HandlerError) error {
			mu.Lock()
			dead = append(dead, failed)
			mu.Unlock()
			handled <- -1
			return nil
		}}
	done := startProcess(f.ctx, s, handler, po)
	for range 6 {
		receive(t, f.ctx, handled)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := processReturned(t, f.ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 2 {
		t.Fatalf("DeadLetter got %d events, want 2", len(dead))
	}
	if d := dead[0]; !errors.Is(d, boom) || d.Attempts != 2 || !d.Token.Equal(ids[3]) || d.Raw.Lookup("fullDocument", "_id").AsInt64() != 3 {
		t.Errorf("first: %v (attempts %d, token %v, raw %v)", d, d.Attempts, d.Token, d.Raw)
	}
	// The default key: the namespace and documentKey, as the server sent them.
	if want, _ := stream.DocumentKeyOf(dead[0].Raw); dead[0].Key != want || want == "" {
		t.Errorf("first: Key %q, want %q", dead[0].Key, want)
	}
	var de *stream.DecodeError
	if d := dead[1]; !errors.As(d, &de) || d.Attempts != 0 || d.Raw.Lookup("fullDocument", "_id").AsInt64() != 4 || d.Key != "" {
		t.Errorf("second: %v (attempts %d, raw %v, key %q)", d, d.Attempts, d.Raw, d.Key)
	}
	f.insert(t, Order{ID: 7})
	checkResumesAt(t, f, o, 7)
}

// Close while a handler runs: Process waits for it up to the grace period
// and commits exactly the low-water mark; a restart resumes right after it.
func TestProcessCloseCommitsLowWaterMark(t *testing.T) {
	for _, tc := range []struct {
		name     string
		finishes bool // order 3's handler returns within the grace period
		resume   int  // the first order after a restart
	}{
		{"within grace", true, 9},
		{"grace over", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			o := &stream.Options{Store: &stream.MemoryStore{}, Name: "orders", CheckpointEvery: 1}
			s := watchWith(t, f, o)
			for id := 1; id <= 8; id++ {
				f.insert(t, Order{ID: id})
			}
			release := make(chan struct{})
			handled := make(chan int, 16)
			handler := func(ctx context.Context, ev stream.Event[Order]) error {
				if ev.FullDocument.ID == 3 {
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				handled <- ev.FullDocument.ID
				return nil
			}
			grace := time.Minute
			if !tc.finishes {
				grace = 50 * time.Millisecond
			}
			done := startProcess(f.ctx, s, handler, &stream.ProcessOptions[stream.Event[Order]]{Workers: 4, Grace: grace})
			for range 7 {
				if id := receive(t, f.ctx, handled); id == 3 {
					t.Fatal("order 3 was handled before its release")
				}
			}
			if err := s.Close(f.ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if tc.finishes {
				close(release)
			}
			err := processReturned(t, f.ctx, done)
			if tc.finishes && err != nil {
				t.Fatalf("Process: %v", err)
			}
			if !tc.finishes && (err == nil || !strings.Contains(err.Error(), "1 handlers were still running")) {
				t.Fatalf("Process returned %v; want a word on the handler still running", err)
			}
			f.insert(t, Order{ID: 9})
			checkResumesAt(t, f, o, tc.resume)
		})
	}
}

// Cancelling ctx stops Process: it returns ctx.Err(), the stream is
// closed and no goroutine of Process is left.
func TestProcessContextCancel(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1})
	ctx, cancel := context.WithCancel(f.ctx)
	handled := make(chan int, 1)
	done := startProcess(ctx, s, func(_ context.Context, ev stream.Event[Order]) error {
		handled <- ev.FullDocument.ID
		return nil
	}, nil)
	receive(t, f.ctx, handled)
	cancel()
	if err := processReturned(t, f.ctx, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Process returned %v, want context.Canceled", err)
	}
	if s.Alive() {
		t.Error("the stream is alive after Process returned")
	}
	if n := processGoroutines(); n != 0 {
		t.Errorf("%d goroutines of Process after it returned", n)
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors after Process returned", f.srv.OpenCursors())
	}
}

// Bad arguments are errors that say what is wrong, and leave the stream as
// it was; a stream already iterated is refused.
func TestProcessBadInput(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	nop := func(context.Context, stream.Event[Order]) error { return nil }
	type po = stream.ProcessOptions[stream.Event[Order]]
	for _, tc := range []struct {
		name    string
		s       *stream.Stream[stream.Event[Order]]
		handler func(context.Context, stream.Event[Order]) error
		o       *po
		want    string
	}{
		{"nil stream", nil, nop, nil, "needs a *Stream"},
		{"nil handler", s, nil, nil, "needs a handler"},
		{"negative workers", s, nop, &po{Workers: -2}, "Workers is -2; Process needs at least 1 worker"},
		{"in flight below workers", s, nop, &po{Workers: 4, MaxInFlight: 2}, "MaxInFlight 2 is below Workers 4"},
		{"negative attempts", s, nop, &po{MaxAttempts: -1}, "MaxAttempts is negative"},
		{"negative grace", s, nop, &po{Grace: -time.Second}, "Grace is negative"},
		{"retry delays", s, nop, &po{RetryDelay: time.Minute, RetryMaxDelay: time.Second}, "RetryDelay 1m0s is above RetryMaxDelay 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := stream.Process(f.ctx, tc.s, tc.handler, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Process: %v, want an error with %q", err, tc.want)
			}
		})
	}
	// The stream is untouched: Next still works.
	f.insert(t, Order{ID: 1})
	nextIDs(t, f, s, 1)

	used := watchOrders(t, f)
	f.insert(t, Order{ID: 2})
	for range used.All(f.ctx) {
		break
	}
	if err := stream.Process(f.ctx, used, nop, nil); !errors.Is(err, stream.ErrSingleUse) {
		t.Errorf("Process on a stream All used: %v, want ErrSingleUse", err)
	}
}
