package stream_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// insertOrders inserts orders with _id from..to-1 in one insertMany.
func insertOrders(t *testing.T, f *fixture, coll *mongo.Collection, from, to int) {
	t.Helper()
	var docs []any
	for i := from; i < to; i++ {
		docs = append(docs, Order{ID: i, Item: fmt.Sprint("item", i), Qty: i})
	}
	if _, err := coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
}

// nextSnap returns the next event of s, failing the test on an error.
func nextSnap(t *testing.T, f *fixture, s *stream.Stream[stream.Event[Order]]) stream.Event[Order] {
	t.Helper()
	ev, err := s.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestSnapshotThenStream(t *testing.T) {
	f := newFixture(t)
	insertOrders(t, f, f.coll, 0, 25)
	store := &stream.MemoryStore{}
	opts := &stream.Options{Name: "snap", Store: store, NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 7, CheckpointEvery: 1}
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	if st := s.Stats().Snapshot; !st.Running || st.Estimated != 25 || st.Copied != 0 || st.Namespace != f.db.Name()+".orders" {
		t.Fatalf("Stats().Snapshot before the first event = %+v", st)
	}
	// Written after Watch fixed the start point and before the scan read
	// it: the at-least-once overlap, in the snapshot and then from the
	// stream.
	insertOrders(t, f, f.coll, 100, 101)
	for n := range 26 {
		i := n
		if n == 25 {
			i = 100
		}
		ev := nextSnap(t, f, s)
		if ev.OperationType != stream.OpSnapshot || ev.FullDocument == nil || ev.FullDocument.ID != i ||
			ev.NS.Coll != "orders" || bson.Raw(ev.DocumentKey).Lookup("_id").AsInt64() != int64(i) {
			t.Fatalf("event %d = %+v, want the snapshot event of order %d", i, ev, i)
		}
		if n == 9 {
			st := s.Stats().Snapshot
			if st.Copied != 10 || st.Fraction() != 0.4 {
				t.Fatalf("after 10 events Stats().Snapshot = %+v (fraction %v)", st, st.Fraction())
			}
		}
	}
	ev := nextSnap(t, f, s)
	if ev.OperationType != stream.OpInsert || ev.FullDocument.ID != 100 {
		t.Fatalf("after the snapshot: %+v, want the insert of order 100", ev)
	}
	if st := s.Stats().Snapshot; st.Running || st.Copied != 26 || st.Fraction() != 1 {
		t.Fatalf("after the snapshot Stats().Snapshot = %+v", st)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Load(f.ctx, "snap")
	if err != nil || cp.Snapshot != nil {
		t.Fatalf("checkpoint after the stream went on = %+v, %v; want one without a snapshot record", cp, err)
	}
}

// TestSnapshotResume stops mid-snapshot and checks that the next Watch goes
// on after the last committed _id, then with the changes made meanwhile.
func TestSnapshotResume(t *testing.T) {
	for _, store := range []struct {
		name string
		make func(t *testing.T, f *fixture) stream.TokenStore
	}{
		{"memory", func(*testing.T, *fixture) stream.TokenStore { return &stream.MemoryStore{} }},
		{"file", func(t *testing.T, _ *fixture) stream.TokenStore {
			fs, err := stream.NewFileStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return fs
		}},
		{"collection", func(t *testing.T, f *fixture) stream.TokenStore {
			cs, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}},
	} {
		t.Run(store.name, func(t *testing.T) {
			f := newFixture(t)
			insertOrders(t, f, f.coll, 0, 30)
			st := store.make(t, f)
			opts := &stream.Options{Name: "snap", Store: st, NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 4, CheckpointEvery: 1}
			s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 12 {
				if ev := nextSnap(t, f, s); ev.FullDocument.ID != i {
					t.Fatalf("event %d is order %d", i, ev.FullDocument.ID)
				}
			}
			if err := s.Close(f.ctx); err != nil { // commits order 11
				t.Fatal(err)
			}
			cp, err := st.Load(f.ctx, "snap")
			if err != nil || cp.Snapshot == nil || cp.Snapshot.LastID.AsInt64() != 11 || cp.Snapshot.Copied != 12 ||
				cp.Snapshot.Collection != "orders" || cp.Snapshot.Version != stream.SnapshotCheckpointVersion {
				t.Fatalf("checkpoint mid-snapshot = %+v (%+v), %v", cp, cp.Snapshot, err)
			}
			// Changes while the consumer is down: an update of a document
			// already copied, a delete of one not copied yet.
			if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 3}}, bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: -3}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: 20}}); err != nil {
				t.Fatal(err)
			}
			s, err = stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			if got := s.Stats().Snapshot; got.Copied != 12 || !got.Running {
				t.Fatalf("resumed Stats().Snapshot = %+v", got)
			}
			for i := 12; i < 30; i++ {
				if i == 20 {
					continue
				}
				if ev := nextSnap(t, f, s); ev.OperationType != stream.OpSnapshot || ev.FullDocument.ID != i {
					t.Fatalf("resumed snapshot: got %s of %v, want order %d", ev.OperationType, ev.DocumentKey, i)
				}
			}
			if ev := nextSnap(t, f, s); ev.OperationType != stream.OpUpdate || bson.Raw(ev.DocumentKey).Lookup("_id").AsInt64() != 3 {
				t.Fatalf("after the snapshot: %s of %v, want the update of order 3", ev.OperationType, ev.DocumentKey)
			}
			if ev := nextSnap(t, f, s); ev.OperationType != stream.OpDelete || bson.Raw(ev.DocumentKey).Lookup("_id").AsInt64() != 20 {
				t.Fatalf("after the update: %s of %v, want the delete of order 20", ev.OperationType, ev.DocumentKey)
			}
		})
	}
}

// TestSnapshotDatabase snapshots every collection of a database, in name
// order, and gets a collection created during the snapshot from the stream.
func TestSnapshotDatabase(t *testing.T) {
	f := newFixture(t)
	insertOrders(t, f, f.db.Collection("b"), 0, 3)
	insertOrders(t, f, f.db.Collection("a"), 10, 12)
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.db, nil, &stream.Options{NoCheckpoint: stream.StartWithSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	want := []string{"a 10", "a 11"}
	for i, ev := 0, nextSnap(t, f, s); ; i, ev = i+1, nextSnap(t, f, s) {
		if i == 0 {
			insertOrders(t, f, f.db.Collection("c"), 20, 21) // a new collection
			want = append(want, "b 0", "b 1", "b 2", "insert c 20")
		}
		got := fmt.Sprintf("%s %d", ev.NS.Coll, ev.FullDocument.ID)
		if ev.OperationType != stream.OpSnapshot {
			got = string(ev.OperationType) + " " + got
		}
		if got != want[i] {
			t.Fatalf("event %d = %q, want %q", i, got, want[i])
		}
		if i == len(want)-1 {
			break
		}
	}
}

// TestSnapshotDeployment snapshots every database but admin, config and
// local.
func TestSnapshotDeployment(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "a deployment with no other data")
	insertOrders(t, f, f.coll, 0, 2)
	other := f.client.Database(f.db.Name() + "_2").Collection("x")
	insertOrders(t, f, other, 5, 6)
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.client, nil, &stream.Options{NoCheckpoint: stream.StartWithSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	var got []string
	for range 3 {
		ev := nextSnap(t, f, s)
		got = append(got, fmt.Sprintf("%s %s.%s %d", ev.OperationType, ev.NS.DB, ev.NS.Coll, ev.FullDocument.ID))
	}
	want := []string{
		"snapshot " + f.db.Name() + ".orders 0", "snapshot " + f.db.Name() + ".orders 1",
		"snapshot " + f.db.Name() + "_2.x 5",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
}

// TestSnapshotFailPolicy: FailWithoutCheckpoint with an empty store is an
// error matching ErrNoCheckpoint and nothing is delivered; once a
// checkpoint exists it resumes.
func TestSnapshotFailPolicy(t *testing.T) {
	f := newFixture(t)
	insertOrders(t, f, f.coll, 0, 3)
	store, err := stream.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := &stream.Options{Name: "orders", Store: store, NoCheckpoint: stream.FailWithoutCheckpoint}
	aggregates := len(f.mon.commands("aggregate"))
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts)
	if !errors.Is(err, stream.ErrNoCheckpoint) || s != nil {
		t.Fatalf("Watch = %v, %v; want an error matching ErrNoCheckpoint", s, err)
	}
	if want := `stream "orders" has no checkpoint in its store, and Options.NoCheckpoint is FailWithoutCheckpoint`; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if n := len(f.mon.commands("aggregate")); n != aggregates {
		t.Fatalf("Watch sent %d aggregates; want none", n-aggregates)
	}
	if _, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{NoCheckpoint: stream.FailWithoutCheckpoint}); err == nil {
		t.Fatal("FailWithoutCheckpoint without a Store was accepted")
	}
	// With a checkpoint (from a first run with StartNow) the policy does not apply.
	first, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{Name: "orders", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	insertOrders(t, f, f.coll, 3, 4)
	nextSnap(t, f, first)
	if err := first.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	s, err = stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	insertOrders(t, f, f.coll, 4, 5)
	if ev := nextSnap(t, f, s); ev.OperationType != stream.OpInsert || ev.FullDocument.ID != 4 {
		t.Fatalf("after the checkpoint: %+v, want the insert of order 4", ev)
	}
}

// TestSnapshotOnHistoryLost: a checkpoint that fell out of the history gives
// ErrHistoryLost, or with SnapshotOnHistoryLost a new snapshot.
func TestSnapshotOnHistoryLost(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "TruncateHistory")
	store := &stream.MemoryStore{}
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{Name: "orders", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	insertOrders(t, f, f.coll, 0, 1)
	nextSnap(t, f, s)
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	insertOrders(t, f, f.coll, 1, 3)
	f.srv.TruncateHistory()

	_, err = stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{Name: "orders", Store: store})
	if !errors.Is(err, stream.ErrHistoryLost) {
		t.Fatalf("Watch after TruncateHistory = %v, want ErrHistoryLost", err)
	}
	s, err = stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{Name: "orders", Store: store, SnapshotOnHistoryLost: true, CheckpointEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	for i := range 3 {
		if ev := nextSnap(t, f, s); ev.OperationType != stream.OpSnapshot || ev.FullDocument.ID != i {
			t.Fatalf("re-snapshot event %d: %s of %v", i, ev.OperationType, ev.DocumentKey)
		}
	}
	insertOrders(t, f, f.coll, 3, 4)
	if ev := nextSnap(t, f, s); ev.OperationType != stream.OpInsert || ev.FullDocument.ID != 3 {
		t.Fatalf("after the re-snapshot: %s of %v, want the insert of order 3", ev.OperationType, ev.DocumentKey)
	}
}

// TestSnapshotOptions checks the refusals.
func TestSnapshotOptions(t *testing.T) {
	f := newFixture(t)
	for name, o := range map[string]*stream.Options{
		"bad policy":     {NoCheckpoint: 7},
		"negative batch": {SnapshotBatchSize: -1},
	} {
		if _, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, o); err == nil {
			t.Errorf("%s: Watch accepted %+v", name, o)
		}
	}
}

// TestSnapshotReadFails: a getMore of the scan fails with a code a new
// read mends; the scan goes on after the last document delivered, with no
// gap and no document twice.
func TestSnapshotReadFails(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "FailCommand")
	insertOrders(t, f, f.coll, 0, 30)
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	for i := range 30 {
		if i == 7 {
			f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, Times: 1, ErrorCode: 91}) // ShutdownInProgress
		}
		if ev := nextSnap(t, f, s); ev.OperationType != stream.OpSnapshot || ev.FullDocument.ID != i {
			t.Fatalf("event %d: %s of %v, want the snapshot event of order %d", i, ev.OperationType, ev.DocumentKey, i)
		}
	}
	if n := len(f.mon.commands("find")); n != 2 {
		t.Fatalf("%d finds, want 2: the first, and one after the failed getMore", n)
	}
	insertOrders(t, f, f.coll, 30, 31)
	if ev := nextSnap(t, f, s); ev.OperationType != stream.OpInsert || ev.FullDocument.ID != 30 {
		t.Fatalf("after the snapshot: %s of %v", ev.OperationType, ev.DocumentKey)
	}
}

// TestSnapshotNamespaceMatch: a database stream whose pipeline starts with
// a $match on ns.coll snapshots only those collections.
func TestSnapshotNamespaceMatch(t *testing.T) {
	f := newFixture(t)
	for _, c := range []string{"a", "b", "c"} {
		insertOrders(t, f, f.db.Collection(c), 0, 2)
	}
	tests := []struct {
		name  string
		match bson.D
		want  []string
	}{
		{"equal", bson.D{{Key: "ns.coll", Value: "b"}}, []string{"b 0", "b 1"}},
		{"in", bson.D{{Key: "ns.coll", Value: bson.D{{Key: "$in", Value: bson.A{"c", "a"}}}}}, []string{"a 0", "a 1", "c 0", "c 1"}},
		{"other", bson.D{{Key: "operationType", Value: bson.D{{Key: "$in", Value: bson.A{"insert", "snapshot"}}}}}, []string{"a 0", "a 1", "b 0", "b 1", "c 0", "c 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := stream.Watch[stream.Event[Order]](f.ctx, f.db, mongo.Pipeline{{{Key: "$match", Value: tc.match}}}, &stream.Options{NoCheckpoint: stream.StartWithSnapshot})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			var got []string
			for range tc.want {
				ev := nextSnap(t, f, s)
				got = append(got, fmt.Sprintf("%s %d", ev.NS.Coll, ev.FullDocument.ID))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("snapshot = %q, want %q", got, tc.want)
			}
			if st := s.Stats().Snapshot; st.Estimated != int64(len(tc.want)) {
				t.Fatalf("Estimated = %d, want %d", st.Estimated, len(tc.want))
			}
		})
	}
}

// TestSnapshotResumeMixedIDTypes resumes a scan whose collection mixes
// _id types: the documents of every type sorted after the last one copied
// come after the restart too, not only those of its own type.
func TestSnapshotResumeMixedIDTypes(t *testing.T) {
	f := newFixture(t)
	oid1, oid2 := bson.NewObjectID(), bson.NewObjectID()
	ids := []any{int32(1), int64(2), 3.5, "a", "b", bson.D{{Key: "k", Value: 1}}, oid1, oid2, true,
		bson.NewDateTimeFromTime(time.Unix(1, 0))}
	var docs []any
	for _, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}})
	}
	if _, err := f.coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
	opts := &stream.Options{Name: "snap", Store: &stream.MemoryStore{}, NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 2, CheckpointEvery: 1}
	var got []string
	next := func(s *stream.Stream[stream.Event[bson.Raw]]) {
		t.Helper()
		ev, err := s.Next(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.OperationType != stream.OpSnapshot {
			t.Fatalf("got a %s event, want a snapshot event", ev.OperationType)
		}
		got = append(got, bson.Raw(ev.DocumentKey).Lookup("_id").String())
	}
	for _, stop := range []int{2, 4, 5} { // restart after a number, a string, a document
		got = got[:0]
		opts.Store = &stream.MemoryStore{}
		s, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, f.coll, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		for range stop {
			next(s)
		}
		if err := s.Close(f.ctx); err != nil { // commits the last one
			t.Fatal(err)
		}
		s, err = stream.Watch[stream.Event[bson.Raw]](f.ctx, f.coll, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		for range len(ids) - stop {
			next(s)
		}
		s.Close(f.ctx)
		var want []string
		for _, d := range docs {
			raw, err := bson.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, bson.Raw(raw).Lookup("_id").String())
		}
		if !slices.Equal(got, want) {
			t.Errorf("restart after %d documents: got _ids\n%v\nwant\n%v", stop, got, want)
		}
	}
}
