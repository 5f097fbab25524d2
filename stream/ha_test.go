//go:build unix

package stream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-changestream/changestream/internal/testsummary"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The HA test runs 3 instances of a service (this test binary again, with
// haEnvURI set) on one stream name with Options.LeaseTTL, against
// cmd/mongotest in a process of its own (standaloneServer), while the
// parent inserts haWrites documents. It kills the active instance with SIGKILL
// haKills times (starting a new instance each time), and once stops it with
// SIGSTOP until a standby took over, then continues it. Each instance
// writes to file descriptor 3 "active <epoch>" when it becomes active, "ev
// <id>" after handling an event and "lost" when its stream ended with
// ErrLeaseLost. The parent checks that every document was handled, that
// the stopped instance reports "lost" after SIGCONT, and, from a change
// stream with post-images on the checkpoint collection, that every
// checkpoint save was made under the lease epoch current at that moment.
const (
	haWrites = 20_000
	haBatch  = 100
	haKills  = 10
	haTTL    = time.Second

	haEnvURI   = "CHANGESTREAM_HA_URI"
	haEnvDB    = "CHANGESTREAM_HA_DB"
	haEnvStart = "CHANGESTREAM_HA_START"
)

type haLine struct {
	child int
	text  string
}

func TestHAOneActiveConsumer(t *testing.T) {
	uri := standaloneServer(t)
	f := newFixtureAt(t, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	coll := f.db.Collection("ha")
	cps := f.db.Collection("checkpoints")
	if err := f.db.CreateCollection(ctx, "checkpoints", options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}})); err != nil {
		t.Fatal(err)
	}
	saves, err := cps.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetFullDocument(options.Required))
	if err != nil {
		t.Fatal(err)
	}
	defer saves.Close(context.Background())
	// Each checkpoint save, seen in the post-image of its update, must
	// carry the epoch of the lease in the same document.
	type saveCount struct {
		saves, fenced int
		err           error
	}
	savesCtx, cancelSaves := context.WithCancel(ctx)
	defer cancelSaves()
	savesDone := make(chan saveCount, 1)
	go func() {
		var c saveCount
		var lastTok string
		for saves.Next(savesCtx) {
			doc, ok := saves.Current.Lookup("fullDocument").DocumentOK()
			if !ok {
				c.err = fmt.Errorf("event without a post-image: %s", saves.Current)
				break
			}
			tok, err := doc.LookupErr("token")
			if err != nil || string(tok.Value) == lastTok {
				continue // a lease write
			}
			lastTok = string(tok.Value)
			c.saves++
			savedEpoch, _ := doc.Lookup("savedEpoch").AsInt64OK()
			epoch, _ := doc.Lookup("lease", "epoch").AsInt64OK()
			if savedEpoch != epoch {
				c.fenced++
			}
		}
		if c.err == nil {
			c.err = saves.Err()
		}
		savesDone <- c
	}()
	sess, err := f.client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.RunCommand(mongo.NewSessionContext(ctx, sess), bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatal(err)
	}
	start := sess.OperationTime()
	sess.EndSession(ctx)
	env := []string{haEnvURI + "=" + uri, haEnvDB + "=" + f.db.Name(), fmt.Sprintf("%s=%d.%d", haEnvStart, start.T, start.I)}

	lines := make(chan haLine, 4096)
	var procs []*exec.Cmd
	startChild := func() int {
		cmd, r := startChildTest(t, "TestHAChild", env, nil)
		id := len(procs)
		procs = append(procs, cmd)
		go func() {
			defer r.Close()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines <- haLine{id, sc.Text()}
			}
		}()
		return id
	}
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	for range 3 {
		startChild()
	}

	// The writer: batch b waits for b*haKills/batches kills, so that the
	// kills fall among the writes.
	kills := make(chan int, 100)
	writeErr := make(chan error, 1)
	go func() {
		killed, batches := 0, haWrites/haBatch
		for b := 0; b < batches; b++ {
			for killed < b*haKills/batches {
				select {
				case killed = <-kills:
				case <-ctx.Done():
					writeErr <- ctx.Err()
					return
				}
			}
			docs := make([]any, haBatch)
			for i := range docs {
				docs[i] = bson.D{{Key: "_id", Value: b*haBatch + i}}
			}
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()

	seen := make([]bool, haWrites)
	nseen, events, takeovers := 0, 0, 0
	lostBy := map[int]int{} // "lost" lines per child
	active := -1
	var maxTakeover time.Duration
	handle := func(l haLine) {
		switch {
		case strings.HasPrefix(l.text, "ev "):
			id, err := strconv.Atoi(l.text[3:])
			if err != nil || id < 0 || id >= haWrites {
				t.Fatalf("child %d: bad line %q", l.child, l.text)
			}
			events++
			if !seen[id] {
				seen[id] = true
				nseen++
			}
		case strings.HasPrefix(l.text, "active "):
			if active >= 0 || takeovers > 0 || events > 0 {
				takeovers++
			}
			active = l.child
		case l.text == "lost":
			lostBy[l.child]++
		default:
			t.Fatalf("child %d: bad line %q", l.child, l.text)
		}
	}
	// next reads one line, failing at the deadline.
	next := func(what string) haLine {
		select {
		case l := <-lines:
			handle(l)
			return l
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (%d of %d documents handled)", what, nseen, haWrites)
		}
		panic("unreachable")
	}
	// awaitActive waits until a child other than old is active.
	awaitActive := func(old int, since time.Time) {
		for active == old || active < 0 {
			next("a takeover")
		}
		if d := time.Since(since); d > maxTakeover {
			maxTakeover = d
		}
	}
	awaitActive(-1, time.Now())
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	nkills, stopped := 0, false
	for nkills < haKills {
		// Let the active instance work for a while.
		timer := time.NewTimer(time.Duration(100+rng.IntN(500)) * time.Millisecond)
	work:
		for {
			select {
			case l := <-lines:
				handle(l)
			case <-timer.C:
				break work
			}
		}
		victim := active
		p := procs[victim].Process
		if !stopped && nkills == haKills/2 {
			stopped = true
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			awaitActive(victim, time.Now())
			before := lostBy[victim]
			if err := p.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			// The stopped instance notices that its lease is gone.
			for lostBy[victim] == before {
				l := next("the stopped instance to report its lost lease")
				if l.child == victim && strings.HasPrefix(l.text, "ev ") {
					t.Logf("the stopped instance handled an event after SIGCONT: %s (it was in flight at SIGSTOP)", l.text)
				}
			}
			continue
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		killedAt := time.Now()
		nkills++
		kills <- nkills
		startChild()
		awaitActive(victim, killedAt)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	for nseen < haWrites {
		next("the last documents")
	}

	// Every save was made under the lease current when it was made.
	cancelSaves()
	sv := <-savesDone
	if sv.err != nil && !errors.Is(sv.err, context.Canceled) {
		t.Fatalf("the change stream on the checkpoints: %v", sv.err)
	}
	if sv.saves == 0 {
		t.Fatal("no checkpoint save seen")
	}
	fenced := sv.fenced
	lost := haWrites - nseen
	testsummary.Print(fmt.Sprintf("ha: %d events, %d takeovers, %d lost, %d saved by a fenced owner, max takeover %.1f s (ttl %.1f s)",
		events, takeovers, lost, fenced, maxTakeover.Seconds(), haTTL.Seconds()))
	if fenced != 0 || lost != 0 {
		t.Fatalf("%d saves by a fenced owner, %d lost", fenced, lost)
	}
	if takeovers < haKills+1 {
		t.Fatalf("%d takeovers, want at least %d", takeovers, haKills+1)
	}
}

// TestHAChild is an instance of TestHAOneActiveConsumer's service.
func TestHAChild(t *testing.T) {
	uri := os.Getenv(haEnvURI)
	if uri == "" {
		t.Skip("a child process of TestHAOneActiveConsumer")
	}
	if err := haChild(uri); err != nil {
		fmt.Fprintln(os.Stderr, "ha child:", err)
		os.Exit(2)
	}
}

func haChild(uri string) error {
	out := os.NewFile(3, "lines")
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	db := client.Database(os.Getenv(haEnvDB))
	store, err := stream.NewCollectionStore(db.Collection("checkpoints"), nil)
	if err != nil {
		return err
	}
	var start bson.Timestamp
	if _, err := fmt.Sscanf(os.Getenv(haEnvStart), "%d.%d", &start.T, &start.I); err != nil {
		return err
	}
	o := &stream.Options{Store: store, Name: "ha", LeaseTTL: haTTL, CheckpointEvery: 20}
	for {
		s, err := stream.Watch[bson.Raw](ctx, db.Collection("ha"), nil, o, options.ChangeStream().SetStartAtOperationTime(&start))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "active %d\n", s.Stats().LeaseEpoch)
		for {
			ev, err := s.Next(ctx)
			if errors.Is(err, stream.ErrLeaseLost) {
				fmt.Fprintln(out, "lost")
				break
			}
			if err != nil {
				var ce *stream.CheckpointError
				if errors.As(err, &ce) {
					continue
				}
				return err
			}
			id, ok := ev.Lookup("documentKey", "_id").AsInt64OK()
			if !ok {
				return fmt.Errorf("event without an integer key: %s", ev)
			}
			fmt.Fprintf(out, "ev %d\n", id)
		}
		_ = s.Close(ctx)
	}
}
