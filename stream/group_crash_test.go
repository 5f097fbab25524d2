//go:build unix

package stream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
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

// The group test runs a partitioned group of groupMembers members (this
// test binary again, with groupEnvURI set) over groupPartitions
// partitions, against cmd/mongotest in a process of its own, while the
// parent makes crashWrites writes over crashKeys keys, each document
// carrying its key's sequence number (as the crash tests). Between the
// writes it kills a member with SIGKILL or adds one, groupChanges times,
// keeping 2 to 5 members. Each member writes "own <partition> <epoch>"
// when it takes a partition, and "ev <partition> <epoch> <key> <seq>" for
// every event it handled, to file descriptor 3. Afterwards the parent
// sorts each key's deliveries by the partition's lease epoch (one epoch is
// one member's hold of the partition; its lines keep their order) and
// checks them as the crash tests check the lives of their child: within
// an epoch a key's sequence numbers go up by one, and an epoch's first
// event of a key follows what earlier epochs handled or repeats it.
const (
	groupPartitions = 16
	groupMembers    = 4
	groupChanges    = 12 // kills and additions of members
	groupTTL        = time.Second

	groupEnvURI = "CHANGESTREAM_GROUP_URI"
	groupEnvDB  = "CHANGESTREAM_GROUP_DB"
	groupEnvID  = "CHANGESTREAM_GROUP_ID"
)

// groupDelivery is one line of a member, in the order the parent read it.
type groupDelivery struct {
	member, partition, key, seq int
	epoch                       int64
}

func TestGroupSurvivesKillsAndJoins(t *testing.T) {
	uri := standaloneServer(t)
	f := newFixtureAt(t, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	coll := f.db.Collection("crash")
	if err := f.db.CreateCollection(ctx, "crash", options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}})); err != nil {
		t.Fatal(err)
	}
	env := []string{groupEnvURI + "=" + uri, groupEnvDB + "=" + f.db.Name()}

	var mu sync.Mutex
	var deliveries []groupDelivery
	var bad []string
	owners := map[int]int{} // partition → member that took it last
	changed := make(chan struct{}, 1)
	procs := map[int]*exec.Cmd{}
	var readers sync.WaitGroup
	next := 0
	start := func() {
		id := next
		next++
		cmd, r := startChildTest(t, "TestGroupChild", append(env, groupEnvID+"="+strconv.Itoa(id)), nil)
		procs[id] = cmd
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer r.Close()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				d, own, err := parseGroupLine(id, sc.Text())
				mu.Lock()
				switch {
				case err != nil:
					bad = append(bad, err.Error())
				case own:
					owners[d.partition] = id
				default:
					deliveries = append(deliveries, d)
				}
				mu.Unlock()
				select { // wake the parent, which checks what it waits for
				case changed <- struct{}{}:
				default:
				}
			}
		}()
	}
	kill := func(id int) {
		_ = procs[id].Process.Kill() // SIGKILL
		_ = procs[id].Wait()
		delete(procs, id)
	}
	defer func() {
		for id := range procs {
			kill(id)
		}
	}()
	for range groupMembers {
		start()
	}
	// The writes start once every partition is taken: the group exists
	// and its start point is before them.
	for {
		mu.Lock()
		n := len(owners)
		mu.Unlock()
		if n == groupPartitions {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the members did not take every partition: %d taken", n)
		}
	}

	// The writer: chunk i starts once i changes of members happened.
	changes := make(chan int, groupChanges+1)
	final := make(chan []int, 1)
	writeErr := make(chan error, 1)
	began := time.Now()
	go func() {
		seq, err := crashWriter(ctx, coll, chunked(changes, groupChanges))
		t.Logf("writer done in %v", time.Since(began))
		final <- seq
		writeErr <- err
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	kills, adds := 0, 0
	for i := range groupChanges {
		// A random moment among the writes.
		timer := time.NewTimer(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		select {
		case <-timer.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if (i%2 == 0 && len(procs) > 2) || len(procs) >= 5 {
			ids := slices.Sorted(func(yield func(int) bool) {
				for id := range procs {
					if !yield(id) {
						return
					}
				}
			})
			kill(ids[rng.IntN(len(ids))])
			kills++
		} else {
			start()
			adds++
		}
		changes <- i + 1
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	want := <-final
	t.Logf("changes done in %v: %d kills, %d additions, %d members", time.Since(began), kills, adds, len(procs))

	// The members read to the end.
	behind := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		seen := make([]int, crashKeys)
		for _, d := range deliveries {
			seen[d.key] = max(seen[d.key], d.seq)
		}
		for k, w := range want {
			if seen[k] < w {
				n++
			}
		}
		return n
	}
	for behind() > 0 {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the group did not catch up: %d keys behind", behind())
		}
	}
	for id := range procs {
		kill(id)
	}
	readers.Wait()

	c := checkGroupDeliveries(deliveries, want)
	c.bad = append(bad, c.bad...)
	testsummary.Print(fmt.Sprintf("group: %d events, %d rebalances, %d lost, %d out of order", c.events, kills+adds, c.lost, c.outOfOrder))
	t.Logf("%d deliveries, %d duplicates, %d partition holds", len(deliveries), c.dups, c.holds)
	if c.lost != 0 || c.outOfOrder != 0 || len(c.bad) > 0 {
		t.Errorf("lost %d, out of order %d: %s", c.lost, c.outOfOrder, strings.Join(c.bad, "; "))
	}
	if c.events != crashWrites {
		t.Errorf("%d events handled, want %d", c.events, crashWrites)
	}
	if c.holds <= groupPartitions {
		t.Errorf("%d partition holds: no partition moved", c.holds)
	}
}

// chunked turns the count of changes into the kills channel crashWriter
// reads: crashWriter starts chunk i of crashChunks after i "kills"; this
// spreads its chunks over n changes.
func chunked(changes <-chan int, n int) <-chan int {
	out := make(chan int, crashChunks+1)
	go func() {
		defer close(out)
		for c := range changes {
			out <- c * crashChunks / n
			if c == n {
				out <- crashChunks
				return
			}
		}
	}()
	return out
}

type groupCheck struct {
	events, lost, outOfOrder, dups, holds int
	bad                                   []string
}

// checkGroupDeliveries checks every key's deliveries, in the order of
// their partition's epochs.
func checkGroupDeliveries(ds []groupDelivery, want []int) groupCheck {
	var c groupCheck
	perKey := make([][]groupDelivery, crashKeys)
	holds := map[[2]int64]bool{}
	for _, d := range ds {
		perKey[d.key] = append(perKey[d.key], d)
		holds[[2]int64{int64(d.partition), d.epoch}] = true
	}
	c.holds = len(holds)
	note := func(format string, args ...any) {
		if len(c.bad) < 10 {
			c.bad = append(c.bad, fmt.Sprintf(format, args...))
		}
	}
	for k, list := range perKey {
		slices.SortStableFunc(list, func(a, b groupDelivery) int { return int(a.epoch - b.epoch) })
		high, last := 0, 0
		var epoch int64 = -1
		for _, d := range list {
			if d.partition != list[0].partition {
				note("key %d in partitions %d and %d", k, list[0].partition, d.partition)
			}
			switch {
			case d.epoch == epoch && d.seq != last+1:
				c.outOfOrder++
				note("key %d: seq %d after %d in epoch %d", k, d.seq, last, epoch)
			case d.epoch != epoch && d.seq > high+1:
				c.lost += d.seq - high - 1
				note("key %d: epoch %d starts at seq %d after %d", k, d.epoch, d.seq, high)
			}
			if d.seq <= high {
				c.dups++
			} else {
				c.events++
				high = d.seq
			}
			epoch, last = d.epoch, d.seq
		}
		if high < want[k] {
			c.lost += want[k] - high
		}
	}
	return c
}

func parseGroupLine(member int, line string) (d groupDelivery, own bool, err error) {
	f := strings.Fields(line)
	nums := make([]int64, len(f))
	for i := 1; i < len(f) && err == nil; i++ {
		nums[i], err = strconv.ParseInt(f[i], 10, 64)
	}
	switch {
	case err == nil && len(f) == 3 && f[0] == "own":
		return groupDelivery{member: member, partition: int(nums[1]), epoch: nums[2]}, true, nil
	case err == nil && len(f) == 5 && f[0] == "ev" && nums[3] >= 0 && nums[3] < crashKeys && nums[4] >= 1:
		return groupDelivery{member: member, partition: int(nums[1]), epoch: nums[2], key: int(nums[3]), seq: int(nums[4])}, false, nil
	}
	return d, false, fmt.Errorf("bad line from member %d: %q", member, line)
}

// TestGroupChild is the member of the group test; it is skipped in a
// normal test run.
func TestGroupChild(t *testing.T) {
	if os.Getenv(groupEnvURI) == "" {
		t.Skip("a member of the group test; TestGroupSurvivesKillsAndJoins runs it")
	}
	if err := groupChild(); err != nil {
		fmt.Fprintf(os.Stderr, "group member: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func groupChild() error {
	out := os.NewFile(3, "deliveries")
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv(groupEnvURI)))
	if err != nil {
		return err
	}
	db := client.Database(os.Getenv(groupEnvDB))
	store, err := stream.NewCollectionStore(db.Collection("checkpoints"), nil)
	if err != nil {
		return err
	}
	g, err := stream.NewGroup[stream.Event[crashDoc]](db.Collection("crash"), nil,
		&stream.Options{Store: store, Name: "crash", LeaseTTL: groupTTL, Instance: "member-" + os.Getenv(groupEnvID)},
		&stream.GroupOptions{Partitions: groupPartitions},
		options.ChangeStream().SetFullDocument(options.Required).SetFullDocumentBeforeChange(options.Required))
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	write := func(b []byte) error {
		// One write per line, below PIPE_BUF: a kill never tears one.
		outMu.Lock()
		defer outMu.Unlock()
		_, err := out.Write(b)
		return err
	}
	err = g.Run(ctx, func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[crashDoc]]) error {
		epoch := s.Stats().LeaseEpoch
		if err := write(fmt.Appendf(nil, "own %d %d\n", p.Index, epoch)); err != nil {
			return err
		}
		var buf []byte
		for ev, err := range s.All(ctx) {
			if err != nil {
				return err
			}
			key, seq, err := crashSeq(ev)
			if err != nil {
				return err
			}
			buf = fmt.Appendf(buf[:0], "ev %d %d %d %d\n", p.Index, epoch, key, seq)
			if err := write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("the group ended: %w", err)
}
