package stream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/internal/faultproxy"
	"github.com/go-changestream/changestream/internal/testsummary"
	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// soakWrites is the number of writes of the soak test.
const soakWrites = 100_000

// soakBatch is how many writes of one kind the writer sends in one
// command.
const soakBatch = 10

// soakLive bounds the documents the writer keeps: mongotest finds a
// document by scanning its collection.
const soakLive = 200

// soakOutage is how long the server is unreachable for the consumer in the
// outage fault.
const soakOutage = 30 * time.Second

// soakRewatchTimeout is the consumer's RewatchTimeout while a getMore fails
// for good: the stream must end with ErrResumeFailing within it.
const soakRewatchTimeout = 2 * time.Second

// soakEvery is the soak stream's CheckpointEvery: after a crash, at most
// this many events come again.
const soakEvery = 50

// teeStore saves to every store and loads from the one chosen, so that a
// restart can resume from the FileStore or from the CollectionStore. Armed
// with crashNext, the next Save stops after the last store, as a consumer
// that dies in the middle of a save would: the first store keeps the
// checkpoint before.
type teeStore struct {
	stores    []stream.TokenStore
	mu        sync.Mutex
	from      int
	crashNext bool
	crashed   bool
}

// errSaveCrash is what a Save interrupted by crashNext returns to the
// stream that the consumer then abandons.
var errSaveCrash = errors.New("soak: the consumer crashed during this save")

func (s *teeStore) Load(ctx context.Context, name string) (stream.Checkpoint, error) {
	s.mu.Lock()
	st := s.stores[s.from]
	s.mu.Unlock()
	return st.Load(ctx, name)
}

func (s *teeStore) Save(ctx context.Context, name string, cp stream.Checkpoint) error {
	s.mu.Lock()
	crash := s.crashNext
	s.crashNext = false
	s.mu.Unlock()
	if crash {
		err := s.stores[len(s.stores)-1].Save(ctx, name, cp)
		s.mu.Lock()
		s.crashed = true
		s.mu.Unlock()
		return errors.Join(err, errSaveCrash)
	}
	var errs []error
	for _, st := range s.stores {
		errs = append(errs, st.Save(ctx, name, cp))
	}
	return errors.Join(errs...)
}

// armCrash makes the next Save crash half-way.
func (s *teeStore) armCrash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashNext, s.crashed = true, false
}

// takeCrash reports whether a Save crashed since the last call.
func (s *teeStore) takeCrash() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.crashed
	s.crashed = false
	return c
}

func (s *teeStore) loadFrom(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = i
}

// failures counts the getMore and aggregate commands that failed, and
// wakes waiters on each.
type failures struct {
	mu   sync.Mutex
	n    int
	wake chan struct{}
}

func (fl *failures) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			if e.CommandName != "getMore" && e.CommandName != "aggregate" {
				return
			}
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.n++
			close(fl.wake)
			fl.wake = make(chan struct{})
		}}
}

func (fl *failures) count() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.n
}

// waitAbove waits until more than n commands failed.
func (fl *failures) waitAbove(ctx context.Context, n int) error {
	for {
		fl.mu.Lock()
		got, wake := fl.n, fl.wake
		fl.mu.Unlock()
		if got > n {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a failed command: %w", ctx.Err())
		}
	}
}

// soakFault is a fault of the schedule: injected by the writer before write
// at, or, for a marker, by the consumer when it sees that write's event.
type soakFault struct {
	at     int
	name   string
	points []mongotest.FailPoint // failpoints to arm
	fails  int                   // failed commands the failpoints cause
	inject func(*mongotest.Server)
	marker string        // consumer-side: "deadline", "crash-file", "crash-collection", "persistent", "crash-save"
	drop   bool          // the writer drops the watched collection
	outage time.Duration // the consumer's server is unreachable this long
}

func soakSchedule() []soakFault {
	none := []string{}
	getMore := []string{"getMore"}
	return []soakFault{
		{at: 4_000, name: "closed connection on getMore", fails: 1,
			points: []mongotest.FailPoint{{Commands: getMore, CloseConnection: true, Times: 1}}},
		{at: 10_000, name: "resumable code with label", fails: 1,
			points: []mongotest.FailPoint{{Commands: getMore, ErrorCode: 91, ErrorLabels: []string{"ResumableChangeStreamError"}, Times: 1}}},
		{at: 16_000, name: "CursorNotFound", fails: 1,
			points: []mongotest.FailPoint{{Commands: getMore, ErrorCode: 43, ErrorLabels: none, Times: 1}}},
		{at: 22_000, name: "HostUnreachable without label (not resumed by the driver)", fails: 1,
			points: []mongotest.FailPoint{{Commands: getMore, ErrorCode: 6, ErrorLabels: none, Times: 1}}},
		{at: 28_000, name: "failed resume of the driver", fails: 3, points: []mongotest.FailPoint{
			{Commands: []string{"aggregate"}, CloseConnection: true, Times: 2},
			{AfterCursorCheckout: true, CloseConnection: true, Times: 1},
		}},
		{at: 34_000, name: "restart", inject: (*mongotest.Server).Restart},
		{at: 40_000, name: "Next deadline during an await", marker: "deadline"},
		{at: 46_000, name: "crash, restart from FileStore", marker: "crash-file"},
		{at: 52_000, name: "invalidate (drop), continue after it", drop: true},
		{at: 58_000, name: "NotWritablePrimary without label", fails: 1,
			points: []mongotest.FailPoint{{Commands: getMore, ErrorCode: 10107, ErrorLabels: none, Times: 1}}},
		{at: 64_000, name: "crash, restart from CollectionStore", marker: "crash-collection"},
		{at: 70_000, name: "closed connections", inject: (*mongotest.Server).DropConnections},
		{at: 76_000, name: "getMore fails for good: ErrResumeFailing, then a new stream from the checkpoint", marker: "persistent"},
		{at: 82_000, name: "crash during a checkpoint save, restart from the store it missed", marker: "crash-save"},
		// Last: the writes after it go on while the consumer cannot
		// reach the server.
		{at: 88_000, name: "server unreachable behind a proxy", outage: soakOutage},
	}
}

// soakEvent is what the consumer saw of one event.
type soakEvent struct {
	key  string // i<id>, u<seq>, d<id>, or the operation type
	ct   bson.Timestamp
	life int // the consumer's incarnation
	pos  int // the event's position in that incarnation
	mark string
}

// TestSoak writes soakWrites mixed inserts, updates and deletes while
// faults are injected, and checks every write's event is delivered, in
// cluster-time order, with duplicates only after a crash and within one
// checkpoint interval. The consumer reaches the server through a proxy,
// so that the server can become unreachable for it while the writer goes
// on.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	f := newFixture(t)
	f.needMongotest(t, "failpoints, Restart")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	proxy, err := faultproxy.New(f.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	dir := t.TempDir()
	fs, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	cstore, err := stream.NewCollectionStore(f.client.Database("soak_checkpoints").Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &teeStore{stores: []stream.TokenStore{fs, cstore}}
	fails := &failures{wake: make(chan struct{})}
	coll := f.coll.Name()

	// Each incarnation of the consumer has its own client, as a restarted
	// program would.
	var clients []*mongo.Client
	defer func() {
		for _, c := range clients {
			_ = c.Disconnect(context.Background())
		}
	}()
	// The consumer's options; RewatchTimeout stays above the outage.
	base := stream.Options{
		Store: store, Name: "soak", CheckpointEvery: soakEvery, CheckpointInterval: time.Hour,
		ContinueAfterInvalidate: true, RewatchDelay: time.Millisecond, RewatchMaxDelay: 50 * time.Millisecond,
		RewatchTimeout: 2 * soakOutage,
	}
	openWith := func(o stream.Options) *stream.Stream[bson.Raw] {
		t.Helper()
		c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + proxy.Addr() + "/?directConnection=true").
			SetMonitor(fails.monitor()).SetServerSelectionTimeout(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		// A restarted program tries again until the server answers (a
		// restart of the server may be under way).
		for {
			s, err := stream.Watch[bson.Raw](ctx, c.Database(f.db.Name()).Collection(coll), nil, &o,
				options.ChangeStream().SetMaxAwaitTime(50*time.Millisecond))
			if err == nil {
				return s
			}
			if ctx.Err() != nil {
				t.Fatalf("Watch: %v", err)
			}
			t.Logf("Watch: %v; trying again", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
	open := func() *stream.Stream[bson.Raw] { t.Helper(); return openWith(base) }
	s := open()

	// The writer.
	wclient, err := mongo.Connect(options.Client().ApplyURI(f.srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer wclient.Disconnect(context.Background())
	wcoll := wclient.Database(f.db.Name()).Collection(coll)
	// The consumer lets the writer go on after the deadline and
	// persistent faults.
	// The outage waits until the consumer restarted after its crash
	// during a save, so that the outage meets a running stream.
	proceed := map[string]chan struct{}{"deadline": make(chan struct{}), "persistent": make(chan struct{}),
		"crashed-in-save": make(chan struct{})}
	type result struct {
		keys   []string
		faults int
		err    error
	}
	wdone := make(chan result, 1)
	go func() {
		var r result
		r.err = soakWrite(ctx, f.srv, proxy, wcoll, fails, proceed, &r.keys, &r.faults)
		wdone <- r
	}()

	// The consumer.
	var seen []soakEvent
	marks := map[string]bool{}
	life, pos, ckErrs, deadlines, resumeFailing, saveCrashes := 0, 0, 0, 0, 0, 0
	var st stream.Stats
	var sumStats stream.Stats
	// restart abandons the stream without Close, as a crash would, and
	// starts again from store from.
	restart := func(from int) {
		cur := s.Stats()
		sumStats.Resumes += cur.Resumes
		sumStats.Rewatches += cur.Rewatches
		store.loadFrom(from)
		_ = clients[len(clients)-1].Disconnect(ctx)
		s = open()
		life++
		pos = 0
	}
	for {
		raw, err := s.Next(ctx)
		if err != nil {
			var ce *stream.CheckpointError
			if errors.As(err, &ce) {
				ckErrs++
				continue
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// Stuck: show where, for the next reader of this failure.
				_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
			}
			t.Fatalf("Next after %d events: %v", len(seen), err)
		}
		ev := soakEventOf(raw)
		ev.life, ev.pos = life, pos
		pos++
		seen = append(seen, ev)
		if ev.mark != "" && marks[ev.mark] {
			continue // a marker delivered again after a crash acts once
		}
		marks[ev.mark] = true
		switch ev.mark {
		case "end":
			st = s.Stats()
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		case "deadline":
			// The writer waits: nothing comes, and the deadline expires
			// during the await.
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Millisecond)
			raw, err := s.Next(dctx)
			dcancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Next with a deadline while the writer waits: %v, %v", soakEventOf(raw).key, err)
			} else {
				deadlines++
			}
			close(proceed["deadline"])
		case "crash-file":
			restart(0)
		case "crash-collection":
			restart(1)
		case "crash-save":
			// The next save reaches only the CollectionStore; then the
			// consumer dies (below) and starts again from the FileStore.
			store.armCrash()
		case "persistent":
			// The writer waits. A stream with a short RewatchTimeout
			// meets a getMore that fails on every cursor: it must end
			// with ErrResumeFailing within RewatchTimeout; a new stream
			// from the checkpoint then goes on.
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close before the persistent fault: %v", err)
			}
			cur := s.Stats()
			sumStats.Resumes += cur.Resumes
			sumStats.Rewatches += cur.Rewatches
			short := base
			short.RewatchTimeout = soakRewatchTimeout
			s = openWith(short)
			f.srv.FailCommand(mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 43})
			start := time.Now()
			_, err := s.Next(ctx)
			took := time.Since(start)
			f.srv.ClearFailPoints()
			if !errors.Is(err, stream.ErrResumeFailing) {
				t.Fatalf("Next while every getMore fails: %v, want ErrResumeFailing", err)
			}
			if took > 2*soakRewatchTimeout {
				t.Errorf("ErrResumeFailing after %v, RewatchTimeout %v", took, soakRewatchTimeout)
			}
			resumeFailing++
			t.Logf("persistent getMore failure: %v after %v", err, took)
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close after ErrResumeFailing: %v", err)
			}
			cur = s.Stats()
			sumStats.Resumes += cur.Resumes
			s = open()
			life++
			pos = 0
			close(proceed["persistent"])
		}
		if store.takeCrash() {
			saveCrashes++
			restart(0)
			close(proceed["crashed-in-save"])
		}
		if ev.mark == "end" {
			break
		}
	}
	w := <-wdone
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}

	// Every write's event at least once; duplicates only right after a
	// crash, within one checkpoint interval; cluster-time order within an
	// incarnation.
	count := map[string]int{}
	dups := 0
	for i, ev := range seen {
		count[ev.key]++
		if count[ev.key] > 1 && ev.key[0] != 'X' {
			dups++
			if ev.pos > soakEvery {
				t.Errorf("duplicate %s at position %d of incarnation %d: beyond one checkpoint interval (%d)", ev.key, ev.pos, ev.life, soakEvery)
			}
		}
		if i > 0 && seen[i-1].life == ev.life && ev.ct.Before(seen[i-1].ct) {
			t.Errorf("event %s at %v after %s at %v: out of cluster-time order", ev.key, ev.ct, seen[i-1].key, seen[i-1].ct)
		}
	}
	lost := 0
	for _, k := range w.keys {
		if count[k] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("write %s: no event", k)
			}
		}
	}
	if len(w.keys) < soakWrites {
		t.Errorf("%d writes, want at least %d", len(w.keys), soakWrites)
	}
	if deadlines != 1 {
		t.Errorf("%d Next deadlines expired during an await, want 1", deadlines)
	}
	if resumeFailing != 1 || saveCrashes != 1 {
		t.Errorf("%d ErrResumeFailing and %d crashes during a save, want 1 and 1", resumeFailing, saveCrashes)
	}
	sumStats.Resumes += st.Resumes
	sumStats.Rewatches += st.Rewatches
	if sumStats.Resumes == 0 || sumStats.Rewatches < 3 {
		t.Errorf("%d resumes and %d rewatches: the faults did not take effect", sumStats.Resumes, sumStats.Rewatches)
	}
	// Printed, not logged: go test hides the logs of a passing package in
	// package-list mode; testsummary also collects the line for .ci/run.
	testsummary.Print(fmt.Sprintf("soak: %d events, %d faults, %d lost, %d duplicates", len(seen), w.faults, lost, dups))
	t.Logf("soak: %d writes, %d driver resumes, %d rewatches, %d checkpoint errors, %d consumer restarts",
		len(w.keys), sumStats.Resumes, sumStats.Rewatches, ckErrs, life)
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("temporary files left in the FileStore's directory: %v", left)
	}
}

// soakEventOf reads the key of an event.
func soakEventOf(raw bson.Raw) soakEvent {
	var ev soakEvent
	if t, i, ok := raw.Lookup("clusterTime").TimestampOK(); ok {
		ev.ct = bson.Timestamp{T: t, I: i}
	}
	num := func(keys ...string) string {
		n, _ := raw.Lookup(keys...).AsInt64OK()
		return strconv.FormatInt(n, 10)
	}
	switch op, _ := raw.Lookup("operationType").StringValueOK(); op {
	case "insert":
		ev.key = "i" + num("fullDocument", "_id")
		ev.mark, _ = raw.Lookup("fullDocument", "mark").StringValueOK()
	case "update":
		ev.key = "u" + num("updateDescription", "updatedFields", "v")
	case "delete":
		ev.key = "d" + num("documentKey", "_id")
	default:
		ev.key = "X" + op // drop, invalidate: not a write of the writer
	}
	return ev
}

// soakWrite is the writer: soakWrites mixed writes, the faults of the
// schedule between them, and a final marker. keys receives the key of the
// event each write must produce.
func soakWrite(ctx context.Context, srv *mongotest.Server, proxy *faultproxy.Proxy, coll *mongo.Collection, fails *failures,
	proceed map[string]chan struct{}, keys *[]string, faults *int,
) error {
	rng := rand.New(rand.NewPCG(1, 2))
	schedule := soakSchedule()
	var live []int64
	var outageOver chan struct{} // closed when the outage ends
	for seq := int64(1); seq <= soakWrites; {
		mark := ""
		if len(schedule) > 0 && int64(schedule[0].at) == seq {
			fault := schedule[0]
			schedule = schedule[1:]
			*faults++
			switch {
			case fault.outage > 0:
				select {
				case <-proceed["crashed-in-save"]:
				case <-ctx.Done():
					return fmt.Errorf("waiting for the consumer's restart before the outage: %w", ctx.Err())
				}
				// The writes go on meanwhile; the outage ends by itself.
				proxy.SetDown(true)
				over := make(chan struct{})
				outageOver = over
				time.AfterFunc(fault.outage, func() {
					proxy.SetDown(false)
					close(over)
				})
			case fault.marker != "":
				mark = fault.marker
			case fault.drop:
				if err := retry(ctx, func() error { return coll.Drop(ctx) }); err != nil {
					return err
				}
				live = live[:0]
			case fault.inject != nil:
				fault.inject(srv)
			default:
				before := fails.count()
				for _, fp := range fault.points {
					srv.FailCommand(fp)
				}
				if err := fails.waitAbove(ctx, before+fault.fails-1); err != nil {
					return fmt.Errorf("%s: %w", fault.name, err)
				}
			}
		}
		// A batch of writes of one kind, in one command, up to the next
		// fault; a marker is a write of its own.
		n := min(int64(soakBatch), soakWrites-seq+1)
		if len(schedule) > 0 {
			n = min(n, int64(schedule[0].at)-seq)
		}
		if mark != "" {
			n = 1
		}
		var err error
		switch r := rng.IntN(10); {
		case mark != "" || len(live) < 20 || r < 5 && len(live) < soakLive:
			docs := make([]any, 0, n)
			for k := range n {
				doc := bson.D{{Key: "_id", Value: seq + k}, {Key: "v", Value: seq + k}}
				if mark != "" {
					doc = append(doc, bson.E{Key: "mark", Value: mark})
				}
				docs = append(docs, doc)
				*keys = append(*keys, "i"+strconv.FormatInt(seq+k, 10))
				live = append(live, seq+k)
			}
			err = retry(ctx, func() error {
				_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
				if onlyDuplicateKeys(err) {
					return nil // an earlier attempt went through
				}
				return err
			})
		case r < 8:
			models := make([]mongo.WriteModel, 0, n)
			for k := range n {
				id := live[rng.IntN(len(live))]
				models = append(models, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).
					SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: seq + k}}}}))
				*keys = append(*keys, "u"+strconv.FormatInt(seq+k, 10))
			}
			err = retry(ctx, func() error {
				_, err := coll.BulkWrite(ctx, models)
				return err
			})
		default:
			n = min(n, int64(len(live)-10))
			models := make([]mongo.WriteModel, 0, n)
			for range n {
				i := rng.IntN(len(live))
				id := live[i]
				live = append(live[:i], live[i+1:]...)
				models = append(models, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}))
				*keys = append(*keys, "d"+strconv.FormatInt(id, 10))
			}
			err = retry(ctx, func() error {
				_, err := coll.BulkWrite(ctx, models)
				return err // a repeat after a lost reply deletes nothing
			})
		}
		if err != nil {
			return fmt.Errorf("writes %d to %d: %w", seq, seq+n-1, err)
		}
		seq += n
		if ch := proceed[mark]; ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("waiting for the consumer after the %s fault: %w", mark, ctx.Err())
			}
		}
	}
	if outageOver != nil {
		select {
		case <-outageOver:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the end of the outage: %w", ctx.Err())
		}
		// The consumer tried to reach the server while it was down.
		if err := proxy.WaitHeld(ctx, 1); err != nil {
			return fmt.Errorf("the outage did not take effect: %w", err)
		}
	}
	return retry(ctx, func() error {
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: int64(soakWrites + 1)}, {Key: "mark", Value: "end"}})
		if mongo.IsDuplicateKeyError(err) {
			return nil
		}
		return err
	})
}

// onlyDuplicateKeys reports whether err is a bulk write error made of
// duplicate key errors only: an earlier attempt inserted those documents.
func onlyDuplicateKeys(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// retry runs a write until it succeeds or fails with a server error: a
// restart or closed connection may fail a write the driver's own retry
// does not cover.
func retry(ctx context.Context, write func() error) error {
	for {
		err := write()
		if err == nil || ctx.Err() != nil {
			return err
		}
		var se mongo.ServerError
		if errors.As(err, &se) && !mongo.IsNetworkError(err) {
			return err
		}
	}
}
