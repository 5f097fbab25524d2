package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// groupWatch follows the members of a group from their functions: which
// member holds which partition, and every event each handled.
type groupWatch struct {
	mu      sync.Mutex
	holder  map[int]string // partition → member running it
	got     map[int][]string
	ops     map[int][]stream.OperationType // partition → DDL events seen
	overlap []string                       // a partition entered while another member held it
	changed chan struct{}                  // closed and replaced on every change
}

func newGroupWatch() *groupWatch {
	return &groupWatch{holder: map[int]string{}, got: map[int][]string{}, ops: map[int][]stream.OperationType{}, changed: make(chan struct{})}
}

func (w *groupWatch) changedLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// fn is the group function of member name: it consumes its partition with
// All and records what it sees.
func (w *groupWatch) fn(name string) func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error {
	return func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[Order]]) error {
		w.mu.Lock()
		if h, ok := w.holder[p.Index]; ok {
			w.overlap = append(w.overlap, fmt.Sprintf("partition %d entered by %s while %s holds it", p.Index, name, h))
		}
		w.holder[p.Index] = name
		w.changedLocked()
		w.mu.Unlock()
		defer func() {
			w.mu.Lock()
			delete(w.holder, p.Index)
			w.changedLocked()
			w.mu.Unlock()
		}()
		for ev, err := range s.All(ctx) {
			if err != nil {
				return err
			}
			w.mu.Lock()
			if ev.FullDocument != nil {
				w.got[ev.FullDocument.ID] = append(w.got[ev.FullDocument.ID], fmt.Sprintf("%s/%d", name, p.Index))
			} else {
				w.ops[p.Index] = append(w.ops[p.Index], ev.OperationType)
			}
			w.changedLocked()
			w.mu.Unlock()
		}
		return nil
	}
}

// waitUntil waits, woken by every change, until ok holds.
func (w *groupWatch) waitUntil(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	if err := w.wait(ctx, ok); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Fatalf("waiting until %s: %v (holders %v)", what, err, w.holder)
	}
}

// wait waits, woken by every change, until ok holds or ctx ends.
func (w *groupWatch) wait(ctx context.Context, ok func() bool) error {
	for {
		w.mu.Lock()
		done, ch := ok(), w.changed
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// held returns the partitions name holds, sorted; with w.mu held.
func (w *groupWatch) held(name string) []int {
	var out []int
	for k, h := range w.holder {
		if h == name {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// runMember runs a member until the returned stop is called, which
// returns Run's error.
func runMember(ctx context.Context, g *stream.Group[stream.Event[Order]], fn func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	go func() { ch <- g.Run(ctx, fn) }()
	return func() error { cancel(); return <-ch }, ch
}

// newGroupFixture returns a fixture, a context for a group test and a
// CollectionStore for its groups.
func newGroupFixture(t *testing.T) (*fixture, context.Context, *stream.CollectionStore) {
	t.Helper()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	store, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, ctx, store
}

func groupOpts(store stream.TokenStore, instance string) *stream.Options {
	return &stream.Options{Store: store, Name: "orders-group", LeaseTTL: time.Second, Instance: instance, CheckpointEvery: 1}
}

func insertRange(t *testing.T, f *fixture, from, to int) {
	t.Helper()
	var docs []any
	for i := from; i < to; i++ {
		docs = append(docs, Order{ID: i, Item: "x"})
	}
	if _, err := f.coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
}

// A member alone holds every partition; a second member takes half of
// them, each handed over only after the first stopped it; when it leaves,
// the first takes them back. Every insert reaches exactly one member, once.
func TestGroupRebalancesOnJoinAndLeave(t *testing.T) {
	f, ctx, store := newGroupFixture(t)
	const parts = 8
	w := newGroupWatch()
	newMember := func(name string) *stream.Group[stream.Event[Order]] {
		g, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, groupOpts(store, name), &stream.GroupOptions{Partitions: parts})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	a := newMember("a")
	stopA, _ := runMember(ctx, a, w.fn("a"))
	w.waitUntil(t, ctx, "a holds every partition", func() bool { return slices.Equal(w.held("a"), all) })
	insertRange(t, f, 0, 50)
	w.waitUntil(t, ctx, "50 inserts handled", func() bool { return len(w.got) == 50 })

	b := newMember("b")
	stopB, _ := runMember(ctx, b, w.fn("b"))
	w.waitUntil(t, ctx, "a and b hold 4 partitions each", func() bool { return len(w.held("a")) == 4 && len(w.held("b")) == 4 })
	insertRange(t, f, 50, 100)
	w.waitUntil(t, ctx, "100 inserts handled", func() bool { return len(w.got) == 100 })
	if st := a.Stats(); st.Rebalances != 1 || len(st.Assigned) != 4 || !slices.Equal(st.Members, []string{"a", "b"}) || !slices.Equal(st.Owned, st.Assigned) {
		t.Fatalf("a's stats after b joined: %+v", st)
	}
	if st := b.Stats(); st.Rebalances != 0 || len(st.Owned) != 4 || st.Acquired != 4 {
		t.Fatalf("b's stats: %+v", st)
	}

	if err := stopB(); !errors.Is(err, context.Canceled) {
		t.Fatalf("b's Run: %v, want context.Canceled", err)
	}
	w.waitUntil(t, ctx, "a holds every partition again", func() bool { return slices.Equal(w.held("a"), all) })
	insertRange(t, f, 100, 150)
	w.waitUntil(t, ctx, "150 inserts handled", func() bool { return len(w.got) == 150 })
	if err := stopA(); !errors.Is(err, context.Canceled) {
		t.Fatalf("a's Run: %v, want context.Canceled", err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.overlap) > 0 {
		t.Fatalf("partitions held twice: %s", strings.Join(w.overlap, "; "))
	}
	perPartition := map[string]int{}
	for id := range 150 {
		if len(w.got[id]) != 1 {
			t.Fatalf("order %d handled %v, want once", id, w.got[id])
		}
		_, p, _ := strings.Cut(w.got[id][0], "/")
		perPartition[p]++
	}
	if len(perPartition) != parts {
		t.Fatalf("inserts per partition %v: want some in each of %d", perPartition, parts)
	}
	// Run removed its member document and left every partition released.
	n, err := store.Collection().CountDocuments(f.ctx, bson.D{{Key: "_id.member", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil || n != 0 {
		t.Fatalf("member documents left: %d, %v", n, err)
	}
}

// Events without a documentKey reach every partition; the end of a
// partition's stream (ErrInvalidated after the drop) ends Run with it.
func TestGroupDDLReachesEveryPartition(t *testing.T) {
	f, ctx, store := newGroupFixture(t)
	const parts = 4
	g, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, groupOpts(store, "a"), &stream.GroupOptions{Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	w := newGroupWatch()
	drops := make(chan struct{})
	var once sync.Once
	fn := w.fn("a")
	_, done := runMember(ctx, g, func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[Order]]) error {
		err := fn(ctx, p, s)
		// Hold the first error back until every partition saw the drop.
		werr := w.wait(ctx, func() bool {
			for k := range parts {
				if !slices.Contains(w.ops[k], stream.OpDrop) {
					return false
				}
			}
			return true
		})
		if werr != nil {
			return fmt.Errorf("waiting until every partition saw the drop: %w", werr)
		}
		once.Do(func() { close(drops) })
		return err
	})
	w.waitUntil(t, ctx, "a holds every partition", func() bool { return len(w.held("a")) == parts })
	insertRange(t, f, 0, 10)
	w.waitUntil(t, ctx, "10 inserts handled", func() bool { return len(w.got) == 10 })
	if err := f.coll.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if !errors.Is(err, stream.ErrInvalidated) || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("Run: %v, want ErrInvalidated naming the partition", err)
	}
	<-drops
}

// A group keeps one start point: events written while no member runs are
// handled by the next member, for partitions with and without a
// checkpoint.
func TestGroupStartsWhereItLeft(t *testing.T) {
	f, ctx, store := newGroupFixture(t)
	const parts = 4
	w := newGroupWatch()
	// a creates the group and stops before any event: its partitions may
	// have no checkpoint. b and c start after writes made while no member
	// ran.
	for i, name := range []string{"a", "b", "c"} {
		g, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, groupOpts(store, name), &stream.GroupOptions{Partitions: parts})
		if err != nil {
			t.Fatal(err)
		}
		stop, _ := runMember(ctx, g, w.fn(name))
		w.waitUntil(t, ctx, name+" holds every partition", func() bool { return len(w.held(name)) == parts })
		want := 20 * i
		w.waitUntil(t, ctx, fmt.Sprintf("%d inserts handled", want), func() bool { return len(w.got) == want })
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		insertRange(t, f, 20*i, 20*(i+1))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range 40 {
		// 40..59 came after the last member stopped.
		if len(w.got[id]) != 1 {
			t.Fatalf("order %d handled %v, want once", id, w.got[id])
		}
	}
}

// A member started with another number of partitions than its group's is
// refused; bad arguments are errors, not panics.
func TestGroupRefusesBadInput(t *testing.T) {
	f, ctx, store := newGroupFixture(t)
	ok := groupOpts(store, "a")
	tests := []struct {
		name   string
		target stream.Watcher
		opts   *stream.Options
		gopts  *stream.GroupOptions
		cs     []options.Lister[options.ChangeStreamOptions]
		want   string
	}{
		{"nil target", nil, ok, nil, nil, "needs a *mongo.Client"},
		{"no store", f.coll, &stream.Options{Name: "g"}, nil, nil, "needs a *CollectionStore"},
		{"memory store", f.coll, &stream.Options{Store: &stream.MemoryStore{}, Name: "g"}, nil, nil, "needs a *CollectionStore"},
		{"no name", f.coll, &stream.Options{Store: store}, nil, nil, "needs a Name"},
		{"negative partitions", f.coll, ok, &stream.GroupOptions{Partitions: -1}, nil, "Partitions -1"},
		{"too many partitions", f.coll, ok, &stream.GroupOptions{Partitions: stream.MaxPartitions + 1}, nil, "Partitions 1025"},
		{"snapshot", f.coll, &stream.Options{Store: store, Name: "g", NoCheckpoint: stream.StartWithSnapshot}, nil, nil, "does not take snapshots"},
		{"resume option", f.coll, ok, nil, []options.Lister[options.ChangeStreamOptions]{options.ChangeStream().SetStartAtOperationTime(&bson.Timestamp{T: 1})}, "own start point"},
		{"short ttl", f.coll, &stream.Options{Store: store, Name: "g", LeaseTTL: time.Millisecond}, nil, nil, "below 30ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stream.NewGroup[stream.Event[Order]](tc.target, nil, tc.opts, tc.gopts, tc.cs...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewGroup: %v, want an error saying %q", err, tc.want)
			}
		})
	}

	g4, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, ok, &stream.GroupOptions{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := g4.Run(ctx, nil); err == nil {
		t.Fatal("Run with a nil function: no error")
	}
	entered := make(chan struct{}, 4)
	stop, _ := runMember(ctx, g4, func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[Order]]) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	<-entered
	if err := g4.Run(ctx, func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error { return nil }); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("a second Run: %v", err)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	g8, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, groupOpts(store, "b"), &stream.GroupOptions{Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	err = g8.Run(ctx, func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error { return nil })
	if !errors.Is(err, stream.ErrGroupMismatch) || !strings.Contains(err.Error(), "4 partitions") {
		t.Fatalf("a member with 8 partitions in a group of 4: %v, want ErrGroupMismatch", err)
	}

	// A function that returns before its context ended stops the group.
	g1, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, &stream.Options{Store: store, Name: "other", LeaseTTL: time.Second}, &stream.GroupOptions{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = g1.Run(ctx, func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "returned before its context ended") {
		t.Fatalf("a function that returns at once: %v", err)
	}
	// FailWithoutCheckpoint refuses to create a group.
	gf, err := stream.NewGroup[stream.Event[Order]](f.coll, nil, &stream.Options{Store: store, Name: "new", NoCheckpoint: stream.FailWithoutCheckpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gf.Run(ctx, func(context.Context, stream.Partition, *stream.Stream[stream.Event[Order]]) error { return nil }); !errors.Is(err, stream.ErrNoCheckpoint) {
		t.Fatalf("FailWithoutCheckpoint and no group: %v, want ErrNoCheckpoint", err)
	}
}
