//go:build unix

package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/internal/testsummary"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The crash tests run a consumer in a child process (this test binary run
// again, with crashEnvMode set) and kill it with SIGKILL at random moments
// while a writer in the parent makes crashWrites writes over crashKeys
// keys. Every document carries its key's sequence number: the nth write of
// a key has seq n (a delete has the seq after its pre-image's). The child
// writes one line "key seq" per event it handled to file descriptor 3; the
// parent checks every line as it comes: per key, within one life of the
// child, sequence numbers go up by one; a life's first event of a key
// follows what earlier lives handled (or repeats it), so nothing is lost.
const (
	crashWrites = 20_000
	crashKeys   = 1_000
	crashKills  = 20 // at least; the writer spreads its writes over crashChunks chunks
	crashChunks = 25

	crashEnvMode  = "CHANGESTREAM_CRASH_MODE" // the child's consumer: a key of crashModes
	crashEnvURI   = "CHANGESTREAM_CRASH_URI"
	crashEnvDB    = "CHANGESTREAM_CRASH_DB"
	crashEnvDir   = "CHANGESTREAM_CRASH_DIR"   // the FileStore's directory
	crashEnvStart = "CHANGESTREAM_CRASH_START" // startAtOperationTime "T.I" for the first run
)

// crashDoc is the document of the crash tests.
type crashDoc struct {
	ID  int `bson:"_id"`
	Seq int `bson:"seq"`
}

// crashMode is one way for the child to consume the stream.
type crashMode struct {
	// bound is the most events a kill may bring again: the events in
	// flight.
	bound int
	// consume reads s until it fails, calling handle for the events it
	// handles, in the order it handles them.
	consume func(ctx context.Context, s *stream.Stream[stream.Event[crashDoc]], handle func([]stream.Event[crashDoc]) error) error
}

// crashBatch is the batch size of the Batches mode.
const crashBatch = 100

// crashWorkers is the worker count of the Process mode, whose bound is
// the default MaxInFlight.
const crashWorkers = 16

var crashModes = map[string]crashMode{
	"batches": {bound: crashBatch, consume: func(ctx context.Context, s *stream.Stream[stream.Event[crashDoc]], handle func([]stream.Event[crashDoc]) error) error {
		for batch, err := range s.Batches(ctx, crashBatch, 20*time.Millisecond) {
			if err != nil {
				return err
			}
			if err := handle(batch); err != nil {
				return err
			}
		}
		return nil
	}},
	"process": {bound: stream.DefaultInFlightPerWorker * crashWorkers, consume: func(ctx context.Context, s *stream.Stream[stream.Event[crashDoc]], handle func([]stream.Event[crashDoc]) error) error {
		var mu sync.Mutex // handle writes the lines from one buffer
		return stream.Process(ctx, s, func(ctx context.Context, ev stream.Event[crashDoc]) error {
			// The handler's own work, while other keys' handlers run.
			time.Sleep(time.Duration(rand.N(500)) * time.Microsecond)
			mu.Lock()
			defer mu.Unlock()
			return handle([]stream.Event[crashDoc]{ev})
		}, &stream.ProcessOptions[stream.Event[crashDoc]]{Workers: crashWorkers})
	}},
}

func TestCrashBatches(t *testing.T) { runCrashTest(t, "batches") }

func TestCrashProcess(t *testing.T) { runCrashTest(t, "process") }

// TestCrashChild is the child process of the crash tests; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(crashEnvMode)
	if mode == "" {
		t.Skip("the child process of the crash tests; they run it")
	}
	if err := crashChild(crashModes[mode]); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func crashChild(mode crashMode) error {
	if mode.consume == nil {
		return fmt.Errorf("unknown mode %q", os.Getenv(crashEnvMode))
	}
	out := os.NewFile(3, "deliveries")
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv(crashEnvURI)))
	if err != nil {
		return err
	}
	store, err := stream.NewFileStore(os.Getenv(crashEnvDir))
	if err != nil {
		return err
	}
	var start bson.Timestamp
	if _, err := fmt.Sscanf(os.Getenv(crashEnvStart), "%d.%d", &start.T, &start.I); err != nil {
		return fmt.Errorf("%s: %w", crashEnvStart, err)
	}
	coll := client.Database(os.Getenv(crashEnvDB)).Collection("crash")
	s, err := stream.Watch[stream.Event[crashDoc]](ctx, coll, nil,
		&stream.Options{Store: store, Name: "crash", CheckpointEvery: 1},
		options.ChangeStream().SetFullDocument(options.Required).SetFullDocumentBeforeChange(options.Required).
			SetStartAtOperationTime(&start))
	if err != nil {
		return err
	}
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return err
	}
	var buf []byte
	err = mode.consume(ctx, s, func(evs []stream.Event[crashDoc]) error {
		buf = buf[:0]
		for _, ev := range evs {
			key, seq, err := crashSeq(ev)
			if err != nil {
				return err
			}
			buf = fmt.Appendf(buf, "%d %d\n", key, seq)
		}
		// One write per batch: at most crashBatch lines of at most 10
		// bytes, below PIPE_BUF, so a kill never tears a line.
		_, err := out.Write(buf)
		return err
	})
	return fmt.Errorf("the consumer ended: %w", err)
}

// crashSeq returns the key and sequence number of an event.
func crashSeq(ev stream.Event[crashDoc]) (key, seq int, err error) {
	switch ev.OperationType {
	case stream.OpInsert, stream.OpUpdate, stream.OpReplace:
		if ev.FullDocument != nil {
			return ev.FullDocument.ID, ev.FullDocument.Seq, nil
		}
	case stream.OpDelete:
		if ev.FullDocumentBeforeChange != nil {
			return ev.FullDocumentBeforeChange.ID, ev.FullDocumentBeforeChange.Seq + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("event %s without the document it needs: %v", ev.OperationType, ev.DocumentKey)
}

// crashCheck checks every delivery of every life of the child.
type crashCheck struct {
	high       []int // per key: the highest seq handled by any life
	life       []int // per key: the last seq handled in this life, 0 if none
	events     int   // distinct events handled
	lost       int
	outOfOrder int
	dups       int // deliveries of events handled before
	lifeDups   int
	maxDups    int // most duplicates in one life
	bad        []string
}

func newCrashCheck() *crashCheck {
	return &crashCheck{high: make([]int, crashKeys), life: make([]int, crashKeys)}
}

// newLife starts the checks of the child's next life.
func (c *crashCheck) newLife() {
	clear(c.life)
	c.maxDups = max(c.maxDups, c.lifeDups)
	c.lifeDups = 0
}

// deliver checks one line of the child.
func (c *crashCheck) deliver(line string) {
	k, s, err := parseCrashLine(line)
	if err != nil {
		c.bad = append(c.bad, err.Error())
		return
	}
	switch {
	case c.life[k] != 0 && s != c.life[k]+1:
		c.outOfOrder++
		if len(c.bad) < 10 {
			c.bad = append(c.bad, fmt.Sprintf("key %d: seq %d after %d in one life", k, s, c.life[k]))
		}
	case c.life[k] == 0 && s > c.high[k]+1:
		c.lost += s - c.high[k] - 1
		if len(c.bad) < 10 {
			c.bad = append(c.bad, fmt.Sprintf("key %d: a new life starts at seq %d after %d", k, s, c.high[k]))
		}
	}
	if s <= c.high[k] {
		c.dups++
		c.lifeDups++
	} else {
		c.events++
		c.high[k] = s
	}
	c.life[k] = s
}

func parseCrashLine(line string) (key, seq int, err error) {
	a, b, ok := strings.Cut(line, " ")
	if ok {
		key, err = strconv.Atoi(a)
		if err == nil {
			seq, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || key < 0 || key >= crashKeys || seq < 1 {
		return 0, 0, fmt.Errorf("bad line from the child: %q", line)
	}
	return key, seq, nil
}

// caughtUp reports whether every key's last write was handled.
func (c *crashCheck) caughtUp(want []int) bool {
	for k, w := range want {
		if c.high[k] < w {
			return false
		}
	}
	return true
}

// crashRound is how many writes the writer sends at once: one write each
// for as many distinct keys, so that their order per key is the order of
// the rounds.
const crashRound = 100

// crashWriter makes crashWrites writes over crashKeys keys in rounds of
// crashRound distinct keys: per round one insert, one update ($inc of the
// seq of every key updated) and one delete command. Chunk i of crashChunks starts once kills reported i
// kills. It returns every key's last sequence number.
func crashWriter(ctx context.Context, coll *mongo.Collection, kills <-chan int) ([]int, error) {
	seq := make([]int, crashKeys)
	exists := make([]bool, crashKeys)
	rng := rand.New(rand.NewPCG(1, 2))
	killed := 0
	for done := 0; done < crashWrites; done += crashRound {
		for killed < done*crashChunks/crashWrites {
			select {
			case killed = <-kills:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var inserts []any
		var updates, deletes bson.A
		for _, k := range rng.Perm(crashKeys)[:crashRound] {
			seq[k]++
			switch {
			case !exists[k]:
				inserts = append(inserts, crashDoc{ID: k, Seq: seq[k]})
				exists[k] = true
			case rng.IntN(5) == 0:
				deletes = append(deletes, k)
				exists[k] = false
			default:
				updates = append(updates, k) // its seq goes up by one
			}
		}
		in := func(keys bson.A) bson.D { return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}} }
		if len(inserts) > 0 {
			if _, err := coll.InsertMany(ctx, inserts); err != nil {
				return nil, fmt.Errorf("inserts: %w", err)
			}
		}
		if len(updates) > 0 {
			r, err := coll.UpdateMany(ctx, in(updates), bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: 1}}}})
			if err != nil || r.ModifiedCount != int64(len(updates)) {
				return nil, fmt.Errorf("updates: %v, %v", r, err)
			}
		}
		if len(deletes) > 0 {
			r, err := coll.DeleteMany(ctx, in(deletes))
			if err != nil || r.DeletedCount != int64(len(deletes)) {
				return nil, fmt.Errorf("deletes: %v, %v", r, err)
			}
		}
	}
	return seq, nil
}

// crashChildProc is one life of the child.
type crashChildProc struct {
	cmd   *exec.Cmd
	ready chan struct{} // closed when the child's stream is open
	lines chan string   // the child's delivery lines; closed when it exits
}

func startCrashChild(t *testing.T, env []string) *crashChildProc {
	t.Helper()
	cmd, r := startChildTest(t, "TestCrashChild", env, nil)
	p := &crashChildProc{cmd: cmd, ready: make(chan struct{}), lines: make(chan string, 1024)}
	go func() {
		defer r.Close()
		defer close(p.lines)
		sc := bufio.NewScanner(r)
		first := true
		for sc.Scan() {
			if first && sc.Text() == "ready" {
				close(p.ready)
				first = false
				continue
			}
			p.lines <- sc.Text()
		}
	}()
	return p
}

func runCrashTest(t *testing.T, modeName string) {
	mode := crashModes[modeName]
	f := newFixture(t)
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		uri = f.srv.URI()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	coll := f.db.Collection("crash")
	if err := f.db.CreateCollection(ctx, "crash", options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}})); err != nil {
		t.Fatal(err)
	}
	// The first life starts at this cluster time; later ones resume from
	// the checkpoint.
	sess, err := f.client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.RunCommand(mongo.NewSessionContext(ctx, sess), bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	start := sess.OperationTime()
	sess.EndSession(ctx)
	if start == nil {
		t.Fatal("the server reported no operationTime")
	}
	env := []string{
		crashEnvMode + "=" + modeName, crashEnvURI + "=" + uri, crashEnvDB + "=" + f.db.Name(),
		crashEnvDir + "=" + t.TempDir(), fmt.Sprintf("%s=%d.%d", crashEnvStart, start.T, start.I),
	}

	// The writer: chunk i starts once i kills happened, so that kills fall
	// among the writes.
	kills := make(chan int, 1000) // never full: the kill loop stops once the writer is done
	final := make(chan []int, 1)
	writeErr := make(chan error, 1)
	began := time.Now()
	go func() {
		seq, err := crashWriter(ctx, coll, kills)
		t.Logf("writer done in %v", time.Since(began))
		final <- seq
		writeErr <- err
	}()

	check := newCrashCheck()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	drain := func(p *crashChildProc) {
		for line := range p.lines {
			check.deliver(line)
		}
		_ = p.cmd.Wait()
		check.newLife()
	}
	var want []int
	nkills := 0
	for want == nil || nkills < crashKills {
		p := startCrashChild(t, env)
		select {
		case <-p.ready:
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			t.Fatal("the child did not open its stream")
		}
		// Kill at a random moment of this life, while reading what it
		// handled.
		timer := time.NewTimer(time.Duration(rng.IntN(400)) * time.Millisecond)
	life:
		for {
			select {
			case line, ok := <-p.lines:
				if !ok {
					t.Fatal("the child exited by itself")
				}
				check.deliver(line)
			case <-timer.C:
				break life
			}
		}
		_ = p.cmd.Process.Kill() // SIGKILL
		drain(p)
		nkills++
		kills <- nkills
		if want == nil {
			select {
			case want = <-final:
			default:
			}
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if want == nil {
		want = <-final
	}

	t.Logf("kills done in %v", time.Since(began))
	// The last life reads to the end.
	p := startCrashChild(t, env)
	for !check.caughtUp(want) {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatal("the last child exited by itself")
			}
			check.deliver(line)
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			t.Fatalf("the last child did not catch up: %v", ctx.Err())
		}
	}
	_ = p.cmd.Process.Kill()
	drain(p)

	for k, w := range want {
		if check.high[k] < w {
			check.lost += w - check.high[k]
		}
	}
	testsummary.Print(fmt.Sprintf("crash: %d events, %d kills, %d lost, %d out of order, %d duplicates (max %d per kill)",
		check.events, nkills, check.lost, check.outOfOrder, check.dups, check.maxDups))
	if check.lost != 0 || check.outOfOrder != 0 || len(check.bad) > 0 {
		t.Errorf("lost %d, out of order %d: %s", check.lost, check.outOfOrder, strings.Join(check.bad, "; "))
	}
	if check.events != crashWrites {
		t.Errorf("%d events handled, want %d", check.events, crashWrites)
	}
	if check.maxDups > mode.bound {
		t.Errorf("up to %d duplicates after one kill, want at most %d (the events in flight)", check.maxDups, mode.bound)
	}
}
