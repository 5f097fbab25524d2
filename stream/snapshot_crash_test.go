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
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The snapshot crash test: the convergence test with the consumer in a
// child process (this test binary run again, with snapEnvMode set), killed
// with SIGKILL at least snapKillsEach times while it reads the snapshot and
// as many times while it reads the change stream. The child writes one
// line per event it handled to file descriptor 3 ("S key seq", "P key seq",
// "U key seq", "D key"); the parent applies each line to its map, the
// consumer's state that outlives the child. Each life consumes the stream
// in another way (Next, All, Batches, Process); the last one reads until
// it handled a change the parent wrote after starting it.
const (
	snapKillsEach  = 5
	snapWrites     = 2000
	snapWriteParts = 10 // the writer's part i starts once i kills happened

	snapEnvMode = "CHANGESTREAM_SNAPSHOT_MODE" // a key of convModes
	snapEnvURI  = "CHANGESTREAM_SNAPSHOT_URI"
	snapEnvDB   = "CHANGESTREAM_SNAPSHOT_DB"
	snapEnvDir  = "CHANGESTREAM_SNAPSHOT_DIR" // the FileStore's directory
)

// snapLastKey is the key the parent writes once the last life started.
const snapLastKey = -2

// TestSnapshotCrashChild is the child process of TestSnapshotCrash; it
// does nothing in a normal test run.
func TestSnapshotCrashChild(t *testing.T) {
	mode := os.Getenv(snapEnvMode)
	if mode == "" {
		t.Skip("the child process of TestSnapshotCrash; it runs it")
	}
	if err := snapChild(mode); err != nil {
		fmt.Fprintf(os.Stderr, "snapshot crash child: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func snapChild(mode string) error {
	consume := convModes[mode]
	if consume == nil {
		return fmt.Errorf("unknown mode %q", mode)
	}
	out := os.NewFile(3, "deliveries")
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv(snapEnvURI)))
	if err != nil {
		return err
	}
	store, err := stream.NewFileStore(os.Getenv(snapEnvDir))
	if err != nil {
		return err
	}
	coll := client.Database(os.Getenv(snapEnvDB)).Collection("conv")
	s, err := stream.Watch[stream.Event[convDoc]](ctx, coll, nil, &stream.Options{
		Store: store, Name: "snap", CheckpointEvery: 20, NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 200,
	})
	if err != nil {
		return err
	}
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return err
	}
	var buf []byte
	err = consume(ctx, s, func(ev stream.Event[convDoc]) (bool, error) {
		o, err := convOpOf(ev)
		if err != nil {
			return false, err
		}
		buf = append(buf[:0], o.op, ' ')
		buf = strconv.AppendInt(buf, int64(o.key), 10)
		if o.op != 'D' {
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(o.seq), 10)
		}
		buf = append(buf, '\n')
		// One write per line, below PIPE_BUF: a kill never tears it.
		_, err = out.Write(buf)
		return true, err
	})
	return fmt.Errorf("the consumer ended: %w", err)
}

// snapChildProc is one life of the child.
type snapChildProc struct {
	cmd   *exec.Cmd
	ready chan struct{} // closed when the child's stream is open
	lines chan convOp   // what the child handled; closed when it exits
	bad   chan error    // a line that does not parse
}

func startSnapChild(t *testing.T, env []string, mode string) *snapChildProc {
	t.Helper()
	cmd, r := startChildTest(t, "TestSnapshotCrashChild", append(env, snapEnvMode+"="+mode), shrinkPipe)
	p := &snapChildProc{cmd: cmd, ready: make(chan struct{}), lines: make(chan convOp, 16), bad: make(chan error, 1)}
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
			o, err := parseConvOp(sc.Text())
			if err != nil {
				select {
				case p.bad <- err:
				default:
				}
				return
			}
			p.lines <- o
		}
	}()
	return p
}

// parseConvOp parses a line of the child.
func parseConvOp(line string) (convOp, error) {
	f := strings.Fields(line)
	if len(f) < 2 || len(f[0]) != 1 || !strings.Contains("SPUD", f[0]) || (f[0] == "D") != (len(f) == 2) || len(f) > 3 {
		return convOp{}, fmt.Errorf("bad line %q", line)
	}
	o := convOp{op: f[0][0]}
	var err error
	if o.key, err = strconv.Atoi(f[1]); err != nil {
		return convOp{}, fmt.Errorf("bad line %q", line)
	}
	if len(f) == 3 {
		if o.seq, err = strconv.Atoi(f[2]); err != nil {
			return convOp{}, fmt.Errorf("bad line %q", line)
		}
	}
	return o, nil
}

func TestSnapshotCrash(t *testing.T) {
	f := newFixture(t)
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		uri = f.srv.URI()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	coll := f.db.Collection("conv")
	if err := convSeed(ctx, coll); err != nil {
		t.Fatal(err)
	}
	env := []string{snapEnvURI + "=" + uri, snapEnvDB + "=" + f.db.Name(), snapEnvDir + "=" + t.TempDir()}

	// The writer: the first half of its parts during the snapshot (part i
	// once i kills happened), the second half after it (part half+i once
	// the consumer went on with the stream and was killed i times since),
	// so that writes fall among the lives.
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	kills, snapKills, streamKills := 0, 0, 0
	snapDone := false // a life handled a change after the snapshot
	rounds := snapWrites / convRound
	writeErr := make(chan error, 1)
	go func() {
		writeErr <- convWriter(ctx, coll, snapWrites, uint64(time.Now().UnixNano()), func(round int) error {
			mu.Lock()
			defer mu.Unlock()
			part, half := round*snapWriteParts/rounds, snapWriteParts/2
			for ctx.Err() == nil && (part < half && kills < part || part >= half && (!snapDone || streamKills < part-half)) {
				cond.Wait()
			}
			return ctx.Err()
		})
	}()
	stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer stop()

	got := make(map[int]int)
	var lastOp byte // of the last line handled, in any life
	modes := []string{"next", "all", "batches", "process"}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	handled := 0
	var writerDone error
	writing := true
	for life := 0; writing || snapKills < snapKillsEach || streamKills < snapKillsEach; life++ {
		p := startSnapChild(t, env, modes[life%len(modes)])
		select {
		case <-p.ready:
		case err := <-p.bad:
			t.Fatal(err)
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			t.Fatal("the child did not open its stream")
		}
		// Kill after a random number of lines, or at a random moment
		// when the stream has less to give.
		n := 100 + rng.IntN(1500)
		if snapKills < snapKillsEach {
			n = 100 + rng.IntN(700) // leave enough of the snapshot for the next lives
		}
		timer := time.NewTimer(time.Duration(100+rng.IntN(500)) * time.Millisecond)
	life:
		for n > 0 {
			select {
			case o, ok := <-p.lines:
				if !ok {
					t.Fatal("the child exited by itself")
				}
				o.apply(got)
				lastOp, handled, n = o.op, handled+1, n-1
				if o.op != 'S' && !snapDone {
					mu.Lock()
					snapDone = true
					cond.Broadcast()
					mu.Unlock()
				}
			case <-timer.C:
				break life
			case err := <-p.bad:
				t.Fatal(err)
			}
		}
		timer.Stop()
		_ = p.cmd.Process.Kill() // SIGKILL
		for o := range p.lines { // what it wrote before it died
			o.apply(got)
			lastOp, handled = o.op, handled+1
		}
		_ = p.cmd.Wait()
		mu.Lock()
		if lastOp == 'S' || lastOp == 0 {
			snapKills++
		} else {
			snapDone = true
			streamKills++
		}
		kills++
		cond.Broadcast()
		mu.Unlock()
		if writing {
			select {
			case writerDone = <-writeErr:
				writing = false
				if writerDone != nil {
					t.Fatal(writerDone)
				}
			default:
			}
		}
	}

	// The last life reads until it handled a change written after it
	// started: then it handled every change before it.
	p := startSnapChild(t, env, "batches")
	<-p.ready
	if _, err := coll.InsertOne(ctx, convDoc{ID: snapLastKey, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	for {
		var o convOp
		var ok bool
		select {
		case o, ok = <-p.lines:
		case err := <-p.bad:
			t.Fatal(err)
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			t.Fatalf("the last child did not get the last write: %v", ctx.Err())
		}
		if !ok {
			t.Fatal("the last child exited by itself")
		}
		o.apply(got)
		handled++
		if o.key == snapLastKey && o.op == 'P' {
			break
		}
	}
	_ = p.cmd.Process.Kill()
	for range p.lines {
	}
	_ = p.cmd.Wait()

	want, err := convContents(ctx, coll)
	if err != nil {
		t.Fatal(err)
	}
	diff := cmp.Diff(want, got)
	testsummary.Print(fmt.Sprintf("snapshot: %d docs, %d concurrent writes, %d kills, converged: %t",
		convDocs, snapWrites, snapKills+streamKills, diff == ""))
	t.Logf("%d kills mid-snapshot, %d mid-stream; %d events handled", snapKills, streamKills, handled)
	if diff != "" {
		t.Fatalf("the map differs from the collection (-collection +map):\n%s", diff)
	}
}
