package stream

// Tests of Process's engine (the window, key order, barriers, retries,
// DeadLetter, grace) against a source in memory, where the order of
// events and completions is under the test's control. process_test.go
// tests Process on real streams over mongotest.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// memEvent is an event of the in-memory source: a sequence number (1, 2,
// ...) and a key ("" for a barrier).
type memEvent struct {
	n   int
	key string
}

// memSource feeds events to a processor and records its commits.
type memSource struct {
	t       *testing.T
	events  chan memEvent
	bound   int           // MaxInFlight: taken - committed must never exceed it
	end     error         // what take returns once events is closed; ErrClosed when nil
	ended   chan struct{} // closed when take returned end
	endOnce sync.Once

	mu        sync.Mutex
	taken     int
	committed int   // n of the newest commit
	commits   []int // every commit, in order
	changed   chan struct{}
}

func newMemSource(t *testing.T, bound int) *memSource {
	return &memSource{t: t, events: make(chan memEvent, 1024), bound: bound, changed: make(chan struct{}), ended: make(chan struct{})}
}

func memToken(n int) Token {
	raw, _ := bson.Marshal(bson.D{{Key: "_data", Value: fmt.Sprintf("%08X", n)}})
	return tokenOf(raw)
}

func memTokenN(tok Token) int {
	var n int
	_, _ = fmt.Sscanf(tok.raw.Lookup("_data").StringValue(), "%X", &n)
	return n
}

func (m *memSource) take(ctx context.Context) (processEvent[memEvent], error) {
	select {
	case ev, ok := <-m.events:
		if !ok {
			if m.end != nil {
				m.endOnce.Do(func() { close(m.ended) })
				return processEvent[memEvent]{}, m.end
			}
			return processEvent[memEvent]{}, ErrClosed
		}
		m.mu.Lock()
		m.taken++
		if m.taken-m.committed > m.bound {
			m.t.Errorf("event %d taken with only %d committed: more than MaxInFlight %d in flight", ev.n, m.committed, m.bound)
		}
		m.mu.Unlock()
		raw, _ := bson.Marshal(bson.D{{Key: "n", Value: ev.n}})
		return processEvent[memEvent]{val: ev, tok: memToken(ev.n), raw: raw}, nil
	case <-ctx.Done():
		return processEvent[memEvent]{}, ctx.Err()
	}
}

func (m *memSource) commit(tok Token) error {
	n := memTokenN(tok)
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= m.committed {
		m.t.Errorf("commit of %d after %d: a commit must move forward", n, m.committed)
	}
	m.committed = n
	m.commits = append(m.commits, n)
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

// lastCommit returns the newest commit.
func (m *memSource) lastCommit() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed
}

// waitCommit waits until events up to n are committed.
func (m *memSource) waitCommit(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for {
		m.mu.Lock()
		c, ch := m.committed, m.changed
		m.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for the commit of %d: %v (committed %d)", n, ctx.Err(), c)
		}
	}
}

// memKey is the Key of the in-memory events.
func memKey(ev memEvent) (string, bool) { return ev.key, ev.key != "" }

// runMem runs a processor over src with handler in a goroutine and
// returns a channel with its result.
func runMem(ctx context.Context, src *memSource, handler func(context.Context, memEvent) error, o *ProcessOptions[memEvent]) (<-chan error, error) {
	if o == nil {
		o = &ProcessOptions[memEvent]{}
	}
	if o.Key == nil {
		o.Key = memKey
	}
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	src.bound = r.MaxInFlight
	p := newProcessor(src.take, src.commit, handler, r, nil)
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	return done, nil
}

func mustRunMem(t *testing.T, ctx context.Context, src *memSource, handler func(context.Context, memEvent) error, o *ProcessOptions[memEvent]) <-chan error {
	t.Helper()
	done, err := runMem(ctx, src, handler, o)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, ctx context.Context, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatalf("Process did not return: %v", ctx.Err())
		return nil
	}
}

// Events of one key run one at a time in stream order, whatever the
// handlers' delays; the commits only move forward and end at the last
// event.
func TestProcessEngineKeyOrder(t *testing.T) {
	ctx := testCtx(t)
	const events, keys = 2000, 37
	src := newMemSource(t, 0)
	var mu sync.Mutex
	last := map[string]int{} // key → n of the last event handled
	running := map[string]bool{}
	maxRunning, nowRunning := 0, 0
	handler := func(_ context.Context, ev memEvent) error {
		mu.Lock()
		if running[ev.key] {
			t.Errorf("event %d of key %s started while another of its key ran", ev.n, ev.key)
		}
		running[ev.key] = true
		nowRunning++
		maxRunning = max(maxRunning, nowRunning)
		mu.Unlock()
		if d := rand.N(4); d > 0 {
			time.Sleep(time.Duration(d) * 50 * time.Microsecond) // a handler's own work, not synchronisation
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.n < last[ev.key] {
			t.Errorf("event %d of key %s handled after event %d", ev.n, ev.key, last[ev.key])
		}
		last[ev.key] = ev.n
		running[ev.key] = false
		nowRunning--
		return nil
	}
	done := mustRunMem(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 8, MaxInFlight: 64})
	for n := 1; n <= events; n++ {
		src.events <- memEvent{n: n, key: fmt.Sprint("k", rand.N(keys))}
	}
	src.waitCommit(t, ctx, events)
	close(src.events)
	if err := wait(t, ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if maxRunning < 2 {
		t.Errorf("at most %d handler ran at once with 8 workers", maxRunning)
	}
	if maxRunning > 8 {
		t.Errorf("%d handlers ran at once with 8 workers", maxRunning)
	}
}

// A barrier starts after every event before it completed, runs alone, and
// the events after it start once it completed.
func TestProcessEngineBarrier(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	var mu sync.Mutex
	var log []string
	release := map[int]chan struct{}{1: make(chan struct{}), 2: make(chan struct{})}
	started := make(chan int, 16)
	handler := func(_ context.Context, ev memEvent) error {
		mu.Lock()
		log = append(log, fmt.Sprint("start ", ev.n))
		mu.Unlock()
		started <- ev.n
		if ch := release[ev.n]; ch != nil {
			<-ch
		}
		mu.Lock()
		log = append(log, fmt.Sprint("end ", ev.n))
		mu.Unlock()
		return nil
	}
	done := mustRunMem(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 4})
	src.events <- memEvent{1, "a"}
	src.events <- memEvent{2, "b"}
	src.events <- memEvent{3, ""} // the barrier
	src.events <- memEvent{4, "c"}
	src.events <- memEvent{5, "d"}
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	close(release[1])
	src.waitCommit(t, ctx, 1)
	close(release[2])
	src.waitCommit(t, ctx, 5)
	close(src.events)
	if err := wait(t, ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	pos := map[string]int{}
	for i, l := range log {
		pos[l] = i
	}
	for _, before := range []string{"end 1", "end 2"} {
		if pos[before] > pos["start 3"] {
			t.Errorf("the barrier started before %q: %v", before, log)
		}
	}
	for _, after := range []string{"start 4", "start 5"} {
		if pos[after] < pos["end 3"] {
			t.Errorf("%q before the barrier ended: %v", after, log)
		}
	}
}

// At most MaxInFlight events are taken and not committed: an event whose
// handler blocks holds back the intake once the window is full (memSource
// checks the bound at every take).
func TestProcessEngineInFlightBound(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	release := make(chan struct{})
	handled := make(chan int, 100)
	handler := func(_ context.Context, ev memEvent) error {
		if ev.n == 1 {
			<-release
		}
		handled <- ev.n
		return nil
	}
	const bound = 10
	done := mustRunMem(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 3, MaxInFlight: bound})
	for n := 1; n <= 40; n++ {
		src.events <- memEvent{n, fmt.Sprint("k", n)}
	}
	// Events 2..bound complete while 1 blocks; none is committed.
	for range bound - 1 {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if c := src.lastCommit(); c != 0 {
		t.Fatalf("committed %d while event 1 runs", c)
	}
	close(release)
	src.waitCommit(t, ctx, 40)
	close(src.events)
	if err := wait(t, ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
}

// A failing handler is retried; a panic is an error like another; after
// MaxAttempts failures without DeadLetter, Process stops with a
// *HandlerError and commits exactly the events before the failed one.
func TestProcessEngineRetryPanicAndStop(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	var mu sync.Mutex
	calls := map[int]int{}
	handler := func(_ context.Context, ev memEvent) error {
		mu.Lock()
		calls[ev.n]++
		c := calls[ev.n]
		mu.Unlock()
		switch {
		case ev.n == 2 && c < 3:
			return fmt.Errorf("transient %d", c)
		case ev.n == 3 && c == 1:
			panic("first try of 3")
		case ev.n == 5:
			panic(fmt.Sprintf("always %d", c))
		}
		return nil
	}
	done := mustRunMem(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 1, MaxAttempts: 4, RetryDelay: time.Millisecond, RetryMaxDelay: 2 * time.Millisecond})
	for n := 1; n <= 6; n++ {
		src.events <- memEvent{n, "k"}
	}
	err := wait(t, ctx, done)
	var he *HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("Process returned %v, want a *HandlerError", err)
	}
	if he.Attempts != 4 || memTokenN(he.Token) != 5 || !errors.Is(err, ErrHandlerPanic) || !strings.Contains(err.Error(), "always 4") {
		t.Errorf("HandlerError: attempts %d, token %d, %v", he.Attempts, memTokenN(he.Token), err)
	}
	if n, _ := bson.Raw(he.Raw).Lookup("n").AsInt64OK(); n != 5 {
		t.Errorf("HandlerError.Raw is %v", he.Raw)
	}
	if c := src.lastCommit(); c != 4 {
		t.Errorf("committed through %d, want 4 (the event before the failed one)", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls[2] != 3 || calls[3] != 2 || calls[6] != 0 {
		t.Errorf("calls: %v; want 3 for event 2, 2 for event 3, none for 6", calls)
	}
}

// DeadLetter receives the event that failed, Process goes on after it and
// commits past it; an event that did not decode goes to DeadLetter
// without a handler call, as a barrier; an error of DeadLetter stops
// Process with it.
func TestProcessEngineDeadLetter(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	boom := errors.New("boom")
	handler := func(_ context.Context, ev memEvent) error {
		switch ev.n {
		case 3, 8:
			return boom
		case 4:
			t.Error("the handler was called for an event that did not decode")
		}
		return nil
	}
	var mu sync.Mutex
	var dead []*HandlerError
	stopWith := errors.New("dead-letter queue is full")
	o := &ProcessOptions[memEvent]{Workers: 4, MaxAttempts: 2, RetryDelay: time.Millisecond, Key: memKey,
		DeadLetter: func(_ context.Context, f *HandlerError) error {
			mu.Lock()
			defer mu.Unlock()
			dead = append(dead, f)
			if memTokenN(f.Token) == 8 {
				return stopWith
			}
			return nil
		}}
	r, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	src.bound = r.MaxInFlight
	withDecodeError := &decodeSource{memSource: src, decodeAt: 4}
	proc := newProcessor(withDecodeError.take, src.commit, handler, r, nil)
	done := make(chan error, 1)
	go func() { done <- proc.run(ctx) }()
	for n := 1; n <= 10; n++ {
		src.events <- memEvent{n, fmt.Sprint("k", n%2)}
	}
	err = wait(t, ctx, done)
	if !errors.Is(err, stopWith) {
		t.Fatalf("Process returned %v, want DeadLetter's error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 3 {
		t.Fatalf("DeadLetter got %d events, want 3 (3, 4, 8)", len(dead))
	}
	if f := dead[0]; memTokenN(f.Token) != 3 || f.Attempts != 2 || !errors.Is(f, boom) || f.Key != "k1" || len(f.Raw) == 0 {
		t.Errorf("first dead letter: %+v", f)
	}
	var de *DecodeError
	if f := dead[1]; memTokenN(f.Token) != 4 || f.Attempts != 0 || !errors.As(f, &de) || f.Key != "" {
		t.Errorf("second dead letter: %+v", f)
	}
	if c := src.lastCommit(); c != 7 {
		t.Errorf("committed through %d, want 7", c)
	}
}

// decodeSource marks one event as not decoded.
type decodeSource struct {
	*memSource
	decodeAt int
}

func (d *decodeSource) take(ctx context.Context) (processEvent[memEvent], error) {
	ev, err := d.memSource.take(ctx)
	if err == nil && ev.val.n == d.decodeAt {
		ev.decodeErr = &DecodeError{Token: ev.tok, Raw: ev.raw, Err: errors.New("not a memEvent")}
	}
	return ev, err
}

// When Process stops, running handlers get the grace period; one that
// outlasts it is abandoned (its context cancelled), and the commit is
// exactly the low-water mark: the event before it, although every later
// event completed.
func TestProcessEngineGrace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		finishes bool // the blocked handler finishes within the grace period
	}{
		{"within grace", true},
		{"grace over", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			src := newMemSource(t, 0)
			blocked := make(chan struct{})
			release := make(chan struct{})
			handled := make(chan int, 16)
			handler := func(hctx context.Context, ev memEvent) error {
				if ev.n == 3 {
					close(blocked)
					select {
					case <-release:
					case <-hctx.Done():
						return hctx.Err()
					}
				}
				handled <- ev.n
				return nil
			}
			grace := time.Hour
			if !tc.finishes {
				grace = 20 * time.Millisecond
			}
			pctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := mustRunMem(t, pctx, src, handler, &ProcessOptions[memEvent]{Workers: 4, Grace: grace})
			for n := 1; n <= 8; n++ {
				src.events <- memEvent{n, fmt.Sprint("k", n)}
			}
			<-blocked
			for range 7 {
				select {
				case <-handled:
				case <-ctx.Done():
					t.Fatal(ctx.Err())
				}
			}
			cancel()
			if tc.finishes {
				close(release)
			}
			err := wait(t, ctx, done)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Process returned %v, want context.Canceled", err)
			}
			want := 8
			if !tc.finishes {
				want = 2
				if err == nil || !strings.Contains(err.Error(), "1 handlers were still running") {
					t.Errorf("Process returned %v, want a word on the handler still running", err)
				}
			}
			if c := src.lastCommit(); c != want {
				t.Errorf("committed through %d, want %d", c, want)
			}
		})
	}
}

// Bad options are errors that name the field.
func TestProcessOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    ProcessOptions[memEvent]
		want string
	}{
		{"workers", ProcessOptions[memEvent]{Workers: -1}, "Workers is -1"},
		{"in flight", ProcessOptions[memEvent]{MaxInFlight: -3}, "MaxInFlight is negative"},
		{"in flight below workers", ProcessOptions[memEvent]{Workers: 8, MaxInFlight: 4}, "MaxInFlight 4 is below Workers 8"},
		{"attempts", ProcessOptions[memEvent]{MaxAttempts: -1}, "MaxAttempts is negative"},
		{"retry delay", ProcessOptions[memEvent]{RetryDelay: -time.Second}, "RetryDelay is negative"},
		{"retry delays", ProcessOptions[memEvent]{RetryDelay: time.Minute, RetryMaxDelay: time.Second}, "RetryDelay 1m0s is above RetryMaxDelay 1s"},
		{"grace", ProcessOptions[memEvent]{Grace: -1}, "Grace is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.resolve()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("resolve: %v, want an error with %q", err, tc.want)
			}
		})
	}
	r, err := (*ProcessOptions[memEvent])(nil).resolve()
	if err != nil || r.Workers != DefaultWorkers || r.MaxInFlight != DefaultWorkers*DefaultInFlightPerWorker ||
		r.MaxAttempts != DefaultMaxAttempts || r.Grace != DefaultGrace {
		t.Errorf("defaults: %+v, %v", r, err)
	}
}

// A panic in Key stops Process with an error naming Key.
func TestProcessEngineKeyPanic(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	done := mustRunMem(t, ctx, src, func(context.Context, memEvent) error { return nil },
		&ProcessOptions[memEvent]{Key: func(ev memEvent) (string, bool) {
			if ev.n == 2 {
				panic("no key")
			}
			return "k", true
		}})
	src.events <- memEvent{1, "k"}
	src.events <- memEvent{2, "k"}
	err := wait(t, ctx, done)
	if err == nil || !strings.Contains(err.Error(), "ProcessOptions.Key panicked") {
		t.Errorf("Process returned %v", err)
	}
}

// The default key is the namespace and the documentKey; events without a
// documentKey are barriers.
func TestDocumentKeyOf(t *testing.T) {
	ev := func(fields ...bson.E) bson.Raw {
		raw, _ := bson.Marshal(bson.D(fields))
		return raw
	}
	ns := func(coll string) bson.E {
		return bson.E{Key: "ns", Value: bson.D{{Key: "db", Value: "d"}, {Key: "coll", Value: coll}}}
	}
	dk := func(id any) bson.E { return bson.E{Key: "documentKey", Value: bson.D{{Key: "_id", Value: id}}} }
	a1, ok1 := documentKeyOf(ev(bson.E{Key: "operationType", Value: "insert"}, ns("a"), dk(1)))
	a1u, ok2 := documentKeyOf(ev(bson.E{Key: "operationType", Value: "update"}, ns("a"), dk(1)))
	b1, ok3 := documentKeyOf(ev(bson.E{Key: "operationType", Value: "insert"}, ns("b"), dk(1)))
	a2, ok4 := documentKeyOf(ev(ns("a"), dk(2)))
	if !ok1 || !ok2 || !ok3 || !ok4 || a1 != a1u || a1 == b1 || a1 == a2 {
		t.Errorf("keys: %q %q %q %q", a1, a1u, b1, a2)
	}
	if _, ok := documentKeyOf(ev(bson.E{Key: "operationType", Value: "drop"}, ns("a"))); ok {
		t.Error("a drop event has a key")
	}
	if _, ok := documentKeyOf(ev(bson.E{Key: "operationType", Value: "invalidate"})); ok {
		t.Error("an invalidate event has a key")
	}
	if _, ok := documentKeyOf(ev(ns("a"), bson.E{Key: "documentKey", Value: "x"})); ok {
		t.Error("a documentKey that is not a document makes a key")
	}
}

// When the stream ends (here with ErrInvalidated), the events already
// taken are all handled and committed before Process returns the error;
// when it is closed, only the running handlers finish.
func TestProcessEngineStreamEnd(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	src.end = ErrInvalidated
	release := make(chan struct{})
	handler := func(_ context.Context, ev memEvent) error {
		if ev.n == 1 {
			<-release
		}
		return nil
	}
	done := mustRunMem(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 2, MaxInFlight: 64})
	for n := 1; n <= 20; n++ {
		src.events <- memEvent{n, "k"} // one key: all wait for event 1
	}
	close(src.events)
	<-src.ended // everything is taken, and the end too
	close(release)
	if err := wait(t, ctx, done); !errors.Is(err, ErrInvalidated) {
		t.Fatalf("Process returned %v, want ErrInvalidated", err)
	}
	if c := src.lastCommit(); c != 20 {
		t.Errorf("committed through %d, want 20: every event taken before the end", c)
	}
}

// runMemInline is runMem with every handler call short enough for intake
// to run the next handler itself (inlineLimit), whatever the machine.
func runMemInline(t *testing.T, ctx context.Context, src *memSource, handler func(context.Context, memEvent) error, o *ProcessOptions[memEvent]) <-chan error {
	t.Helper()
	if o.Key == nil {
		o.Key = memKey
	}
	r, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	src.bound = r.MaxInFlight
	p := newProcessor(src.take, src.commit, handler, r, nil)
	p.inlineMax = math.MaxInt64 - 1 // only the first call, of unknown length, goes to a worker
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	return done
}

// onIntake reports whether the caller runs on Process's intake goroutine.
func onIntake() bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, ".(*processor[") && strings.HasSuffix(f.Function, ").intake") {
			return true
		}
		if !more {
			return false
		}
	}
}

// When nothing else is in flight intake runs a handler itself; a call
// that then turns slow does not hold the other events back: the watchdog
// hands intake to a new goroutine, and the call's own goroutine ends it as
// a worker. Here the slow call (event 101, key "slow") returns only once
// the events of other keys after it were handled, which without that
// would never happen; the next event of its key waits for it, and so does
// a barrier.
func TestProcessEngineSlowCallOnIntakeIsHandedOver(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	const fast, others = 100, 20
	var mu sync.Mutex
	var inline, handled int
	othersDone := make(chan struct{})
	var slowEnded, followerStarted, barrierStarted bool
	var order []string
	handler := func(_ context.Context, ev memEvent) error {
		mu.Lock()
		if onIntake() {
			inline++
		}
		mu.Unlock()
		switch {
		case ev.n == fast+1: // the slow call
			if !onIntake() {
				t.Errorf("event %d ran on a worker; want it on intake (after %d fast calls)", ev.n, fast)
			}
			select {
			case <-othersDone:
			case <-ctx.Done():
				t.Errorf("the other events were not handled while event %d ran", ev.n)
			}
			mu.Lock()
			slowEnded = true
			order = append(order, "slow ended")
			mu.Unlock()
		case ev.key == "slow": // its follower
			mu.Lock()
			followerStarted = true
			if !slowEnded {
				t.Errorf("event %d of key slow started before event %d ended", ev.n, fast+1)
			}
			mu.Unlock()
		case ev.key == "": // a barrier
			mu.Lock()
			barrierStarted = true
			if !slowEnded || !followerStarted {
				t.Errorf("the barrier started before the events before it ended: %v", order)
			}
			mu.Unlock()
		}
		mu.Lock()
		handled++
		if ev.n > fast+1 && ev.n <= fast+1+others && ev.key != "slow" {
			order = append(order, fmt.Sprint(ev.n))
			if len(order) == others-1 {
				close(othersDone)
			}
		}
		mu.Unlock()
		return nil
	}
	done := runMemInline(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 4, MaxInFlight: 64})
	n := 0
	for range fast {
		n++
		src.events <- memEvent{n, fmt.Sprint("k", n)}
		src.waitCommit(t, ctx, n) // one at a time: nothing else is in flight
	}
	n++
	src.events <- memEvent{n, "slow"}
	for i := range others {
		n++
		key := fmt.Sprint("o", n)
		if i == others/2 {
			key = "slow"
		}
		src.events <- memEvent{n, key}
	}
	n++
	src.events <- memEvent{n, ""}
	src.waitCommit(t, ctx, n)
	close(src.events)
	if err := wait(t, ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if inline < fast/2 {
		t.Errorf("intake ran %d of the %d fast handlers; want most", inline, fast)
	}
	if handled != n || !barrierStarted {
		t.Errorf("handled %d events of %d (barrier handled: %v)", handled, n, barrierStarted)
	}
}

// Intake runs only an event's first attempt: after a failure the workers
// retry it with backoff while intake goes on with the other keys (the
// second attempt waits here for events after it to be handled), and the
// attempts add up to MaxAttempts.
func TestProcessEngineFailureOnIntakeIsRetriedByAWorker(t *testing.T) {
	ctx := testCtx(t)
	src := newMemSource(t, 0)
	const fast, after = 50, 10
	var mu sync.Mutex
	var attempts []bool // of event fast+1: on intake?
	var afterHandled int
	afterDone := make(chan struct{})
	handler := func(_ context.Context, ev memEvent) error {
		if ev.n != fast+1 {
			if ev.n > fast+1 {
				mu.Lock()
				if afterHandled++; afterHandled == after {
					close(afterDone)
				}
				mu.Unlock()
			}
			return nil
		}
		mu.Lock()
		attempts = append(attempts, onIntake())
		a := len(attempts)
		mu.Unlock()
		if a == 2 {
			select {
			case <-afterDone:
			case <-ctx.Done():
				t.Error("the events after the failed one waited for its retry")
			}
		}
		if a < 3 {
			return fmt.Errorf("attempt %d fails", a)
		}
		return nil
	}
	done := runMemInline(t, ctx, src, handler, &ProcessOptions[memEvent]{Workers: 4, MaxAttempts: 3, RetryDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
	n := 0
	for range fast {
		n++
		src.events <- memEvent{n, fmt.Sprint("k", n)}
		src.waitCommit(t, ctx, n)
	}
	for range after + 1 {
		n++
		src.events <- memEvent{n, fmt.Sprint("k", n)}
	}
	src.waitCommit(t, ctx, n)
	close(src.events)
	if err := wait(t, ctx, done); err != nil {
		t.Fatalf("Process: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 || !attempts[0] || attempts[1] || attempts[2] {
		t.Errorf("attempts of the failing event (on intake?) = %v; want [true false false]", attempts)
	}
}
