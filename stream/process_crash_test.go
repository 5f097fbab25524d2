package stream_test

// The crash test of Process: a child process (this test binary, run again
// with processCrashChildEnv set) consumes with Process and 16 workers from
// a FileStore checkpoint and is killed with SIGKILL at random moments (once
// it handled a random number of events of its run, about as many as are
// written meanwhile) while the parent writes inserts, updates and deletes
// over many keys.
// Every write carries a per-key sequence number; the child appends each
// event its handler ran for to a log, and the parent checks every line of
// it: nothing lost, nothing out of order within a key, and no more events
// repeated after a kill than Process holds in flight.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-changestream/changestream/internal/testsummary"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	// processCrashChildEnv selects the child's role; the other variables
	// carry its settings.
	processCrashChildEnv = "CHANGESTREAM_PROCESS_CRASH_CHILD"
	processCrashURI      = "CHANGESTREAM_PROCESS_CRASH_URI"
	processCrashDB       = "CHANGESTREAM_PROCESS_CRASH_DB"
	processCrashDir      = "CHANGESTREAM_PROCESS_CRASH_DIR"
	processCrashRun      = "CHANGESTREAM_PROCESS_CRASH_RUN"

	processCrashWorkers  = 16
	processCrashInFlight = stream.DefaultInFlightPerWorker * processCrashWorkers
	processCrashWrites   = 20000
	processCrashKeys     = 1000
	processCrashKills    = 24
)

// TestProcessCrash is the parent: it writes, starts and kills the
// children, and checks their log.
func TestProcessCrash(t *testing.T) {
	if os.Getenv(processCrashChildEnv) != "" {
		t.Skip("this is the child process")
	}
	if testing.Short() {
		t.Skip("the crash test runs child processes; skipped with -short")
	}
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	uri := os.Getenv("MONGODB_URI")
	if f.srv != nil {
		uri = f.srv.URI()
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The first child resumes from a checkpoint taken before any write.
	if err := f.db.CreateCollection(ctx, f.coll.Name()); err != nil {
		t.Fatal(err)
	}
	store, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	start, err := stream.Watch[bson.Raw](ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := start.ResumeToken()
	_ = start.Close(ctx)
	if tok.IsZero() {
		t.Fatal("no resume token before the first write")
	}
	if err := store.Save(ctx, "crash", stream.Checkpoint{Token: tok}); err != nil {
		t.Fatal(err)
	}

	w := newCrashWriter(f.coll)
	perCycle := processCrashWrites / processCrashKills
	kills := 0
	for run := 0; run <= processCrashKills; run++ {
		final := run == processCrashKills
		// The child is killed once it handled a random number of events
		// (on average as many as are written meanwhile), or at a random
		// moment after the writes of its run if it handles fewer.
		target := perCycle/2 + rand.N(perCycle)
		child := startCrashChild(t, ctx, exe, uri, f.db.Name(), dir, run, target)
		writes := make(chan error, 1)
		go func() {
			if final {
				// Every write is made: drop the collection, a barrier
				// after every event; the child stops at its invalidate.
				writes <- f.coll.Drop(ctx)
				return
			}
			n := perCycle
			if run == processCrashKills-1 {
				n = processCrashWrites - run*perCycle
			}
			writes <- w.write(ctx, n)
		}()
		if final {
			if err := <-writes; err != nil {
				t.Fatal(err)
			}
			if err := child.wait(); err != nil {
				t.Fatalf("the last child, which should end at the invalidate event: %v\n%s", err, child.stderr())
			}
			break
		}
		child.waitHandling(t, ctx)
		wrote := false
		select {
		case <-child.reached:
		case err := <-writes:
			if err != nil {
				t.Fatal(err)
			}
			wrote = true
			time.Sleep(time.Duration(rand.N(50)) * time.Millisecond) // the kill's random moment, not a synchronisation
		}
		child.kill(t)
		kills++
		if !wrote {
			if err := <-writes; err != nil {
				t.Fatal(err)
			}
		}
	}

	res := checkCrashLog(t, filepath.Join(dir, "handled.log"), w.ops)
	line := fmt.Sprintf("crash: %d events, %d kills, %d lost, %d out of order, %d duplicates (max %d per kill)",
		w.events, kills, res.lost, res.outOfOrder, res.duplicates, res.maxPerKill)
	testsummary.Print("Process " + line)
	if res.lost != 0 || res.outOfOrder != 0 {
		t.Errorf("events lost or out of order: %s", line)
	}
	if res.maxPerKill > processCrashInFlight {
		t.Errorf("%d events came again after one kill, more than MaxInFlight %d", res.maxPerKill, processCrashInFlight)
	}
	if kills < 20 {
		t.Errorf("%d kills, want at least 20", kills)
	}
}

// crashOp is one write of the crash test: its kind and the key's sequence
// number it set (deletes count in the sequence too).
type crashOp struct {
	kind string // insert, update, delete
	seq  int
}

// crashWriter makes the writes over processCrashKeys keys.
type crashWriter struct {
	coll   *mongo.Collection
	ops    map[int][]crashOp // per key, in order
	exists map[int]bool
	events int
}

func newCrashWriter(coll *mongo.Collection) *crashWriter {
	return &crashWriter{coll: coll, ops: map[int][]crashOp{}, exists: map[int]bool{}}
}

// write makes n writes (at most processCrashKeys) on distinct random
// keys: an insert of a key that does not exist, otherwise an update (three
// in four) or a delete. As each key is written once, the writes are sent
// in groups of up to 50, one command for the inserts, one for the updates
// and one for the deletes of a group.
func (w *crashWriter) write(ctx context.Context, n int) error {
	keys := rand.Perm(processCrashKeys)[:n]
	for len(keys) > 0 {
		group := keys[:min(50, len(keys))]
		keys = keys[len(group):]
		var inserts []any
		var updates, deletes []mongo.WriteModel
		for _, k := range group {
			seq := len(w.ops[k])
			id := bson.D{{Key: "_id", Value: k}}
			kind := "insert"
			switch {
			case !w.exists[k]:
				inserts = append(inserts, bson.D{{Key: "_id", Value: k}, {Key: "seq", Value: seq}})
				w.exists[k] = true
			case rand.N(4) > 0:
				kind = "update"
				updates = append(updates, mongo.NewUpdateOneModel().SetFilter(id).
					SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}}}))
			default:
				kind = "delete"
				deletes = append(deletes, mongo.NewDeleteOneModel().SetFilter(id))
				w.exists[k] = false
			}
			w.ops[k] = append(w.ops[k], crashOp{kind: kind, seq: seq})
			w.events++
		}
		if len(inserts) > 0 {
			if _, err := w.coll.InsertMany(ctx, inserts); err != nil {
				return fmt.Errorf("inserts: %w", err)
			}
		}
		for _, models := range [][]mongo.WriteModel{updates, deletes} {
			if len(models) == 0 {
				continue
			}
			res, err := w.coll.BulkWrite(ctx, models)
			if err != nil {
				return fmt.Errorf("bulk write: %w", err)
			}
			if res.ModifiedCount+res.DeletedCount != int64(len(models)) {
				return fmt.Errorf("bulk write of %d: %d modified, %d deleted", len(models), res.ModifiedCount, res.DeletedCount)
			}
		}
	}
	return nil
}

// crashChild is a running child process.
type crashChild struct {
	cmd      *exec.Cmd
	handling chan struct{} // closed when the child says it handled an event
	reached  chan struct{} // closed when it handled target events
	errBuf   *strings.Builder
	mu       *sync.Mutex
	done     chan error
}

func startCrashChild(t *testing.T, ctx context.Context, exe, uri, db, dir string, run, target int) *crashChild {
	t.Helper()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestProcessCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		processCrashChildEnv+"=1", processCrashURI+"="+uri, processCrashDB+"="+db,
		processCrashDir+"="+dir, processCrashRun+"="+strconv.Itoa(run))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, handling: make(chan struct{}), reached: make(chan struct{}),
		errBuf: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	cmd.Stderr = lockedWriter{c.mu, c.errBuf}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		handled := 0
		for sc.Scan() {
			if sc.Text() != "handled" {
				continue
			}
			if handled++; handled == 1 {
				close(c.handling)
			}
			if handled == target {
				close(c.reached)
			}
		}
		c.done <- cmd.Wait()
	}()
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (c *crashChild) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errBuf.String()
}

// waitHandling waits until the child handled an event.
func (c *crashChild) waitHandling(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-c.handling:
	case err := <-c.done:
		t.Fatalf("the child ended before handling an event: %v\n%s", err, c.stderr())
	case <-ctx.Done():
		t.Fatalf("the child handled no event: %v\n%s", ctx.Err(), c.stderr())
	}
}

func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-c.done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v\n%s", err, c.stderr())
	}
}

func (c *crashChild) wait() error { return <-c.done }

// TestProcessCrashChild is the child: it consumes with Process from the
// FileStore checkpoint and appends a line per handled event to the log,
// until the invalidate event that follows the parent's drop.
func TestProcessCrashChild(t *testing.T) {
	if os.Getenv(processCrashChildEnv) == "" {
		t.Skip("runs only as TestProcessCrash's child process")
	}
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv(processCrashURI)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	dir := os.Getenv(processCrashDir)
	store, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(dir, "handled.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	run := os.Getenv(processCrashRun)
	coll := client.Database(os.Getenv(processCrashDB)).Collection("orders")
	s, err := stream.Watch[bson.Raw](ctx, coll, nil, &stream.Options{Store: store, Name: "crash", CheckpointEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	var stdout sync.Mutex
	err = stream.Process(ctx, s, func(ctx context.Context, ev bson.Raw) error {
		op := ev.Lookup("operationType").StringValue()
		k, ok := ev.Lookup("documentKey", "_id").AsInt64OK()
		if !ok {
			return nil // drop, invalidate: the end
		}
		seq := "-"
		switch op {
		case "insert":
			seq = strconv.FormatInt(ev.Lookup("fullDocument", "seq").AsInt64(), 10)
		case "update":
			seq = strconv.FormatInt(ev.Lookup("updateDescription", "updatedFields", "seq").AsInt64(), 10)
		}
		tok := ev.Lookup("_id", "_data").StringValue()
		time.Sleep(time.Duration(rand.N(500)) * time.Microsecond) // the handler's own work
		// One write(2) per line: a killed child leaves whole lines.
		if _, err := fmt.Fprintf(log, "%s %s %d %s %s\n", run, op, k, seq, tok); err != nil {
			return err
		}
		stdout.Lock()
		fmt.Println("handled") // for the parent: it kills the child after a number of these
		stdout.Unlock()
		return nil
	}, &stream.ProcessOptions[bson.Raw]{Workers: processCrashWorkers, MaxInFlight: processCrashInFlight})
	if !errors.Is(err, stream.ErrInvalidated) {
		t.Fatalf("Process returned %v, want ErrInvalidated after the drop", err)
	}
}

// crashResult is what the log shows.
type crashResult struct {
	lost, outOfOrder, duplicates, maxPerKill int
}

// checkCrashLog checks every line of the children's log against the
// writes: within a run, the events of a key follow one another in the
// order written; an event seen for the first time is the next one of its
// key (no gap); events repeated after a kill are counted.
func checkCrashLog(t *testing.T, path string, ops map[int][]crashOp) crashResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res crashResult
	index := map[string]int{}   // token → index in its key's ops
	frontier := map[int]int{}   // key → index of the newest event seen, -1 before
	prev := map[string]int{}    // run/key → index of the run's last event of the key
	repeats := map[string]int{} // run → events seen in an earlier run
	complaints := 0
	complain := func(format string, args ...any) {
		res.outOfOrder++
		if complaints++; complaints <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var run, kind, seq, tok string
		var k int
		if _, err := fmt.Sscanf(line, "%s %s %d %s %s", &run, &kind, &k, &seq, &tok); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		f, ok := frontier[k]
		if !ok {
			f = -1
		}
		rk := run + "/" + strconv.Itoa(k)
		idx, known := index[tok]
		switch p, inRun := prev[rk]; {
		case known:
			res.duplicates++
			repeats[run]++
			if inRun && idx != p+1 {
				complain("run %s, key %d: event %d after %d", run, k, idx, p)
			}
		case inRun && p != f:
			complain("run %s, key %d: a new event after %d while %d was seen", run, k, p, f)
			idx = f + 1
		default:
			idx = f + 1
		}
		if idx >= len(ops[k]) {
			complain("run %s, key %d: event %d of %d written", run, k, idx, len(ops[k]))
			continue
		}
		want := ops[k][idx]
		if want.kind != kind || (seq != "-" && seq != strconv.Itoa(want.seq)) {
			complain("run %s, key %d: event %d is %s %s, want %s %d", run, k, idx, kind, seq, want.kind, want.seq)
		}
		index[tok] = idx
		prev[rk] = idx
		frontier[k] = max(f, idx)
	}
	for k, o := range ops {
		f, ok := frontier[k]
		if !ok {
			f = -1
		}
		if lost := len(o) - 1 - f; lost > 0 {
			res.lost += lost
			if complaints++; complaints <= 10 {
				t.Errorf("key %d: events %d to %d of %d never handled (%v)", k, f+1, len(o)-1, len(o), o[f+1:])
			}
		}
	}
	for _, n := range repeats {
		res.maxPerKill = max(res.maxPerKill, n)
	}
	return res
}
