package likemongod_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func (f *fixture) count(t *testing.T, ctx context.Context, filter bson.D) int64 {
	t.Helper()
	n, err := f.coll.CountDocuments(ctx, filter)
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// startTxn starts a session and a transaction in it.
func (f *fixture) startTxn(t *testing.T) (*mongo.Session, context.Context) {
	t.Helper()
	s, err := f.client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.EndSession(context.Background()) })
	if err := s.StartTransaction(); err != nil {
		t.Fatal(err)
	}
	return s, mongo.NewSessionContext(f.ctx, s)
}

func (f *fixture) createColl(t *testing.T) {
	t.Helper()
	// A transaction may create a collection on 4.4+, but a collection
	// that exists keeps the test about visibility only.
	if err := f.db.CreateCollection(f.ctx, f.coll.Name()); err != nil {
		t.Fatal(err)
	}
}

// Writes inside a transaction are seen inside it, not outside, until it
// commits.
func TestTransactionCommitVisibility(t *testing.T) {
	f := newFixture(t)
	f.createColl(t)
	s, tctx := f.startTxn(t)
	if _, err := f.coll.InsertOne(tctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, tctx, bson.D{}); n != 1 {
		t.Fatalf("inside the transaction: %d documents, want 1", n)
	}
	if n := f.count(t, f.ctx, bson.D{}); n != 0 {
		t.Fatalf("outside before commit: %d documents, want 0", n)
	}
	if err := s.CommitTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, f.ctx, bson.D{}); n != 1 {
		t.Fatalf("outside after commit: %d documents, want 1", n)
	}
	// A retried commit of a committed transaction succeeds again.
	if err := s.CommitTransaction(f.ctx); err != nil {
		t.Fatalf("second commit: %v", err)
	}
}

// abortTransaction discards the transaction's writes.
func TestTransactionAbort(t *testing.T) {
	f := newFixture(t)
	f.createColl(t)
	s, tctx := f.startTxn(t)
	if _, err := f.coll.InsertOne(tctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, f.ctx, bson.D{}); n != 0 {
		t.Fatalf("after abort: %d documents, want 0", n)
	}
}

// A transaction reads a snapshot: a write committed outside after its
// first read is not seen by it.
func TestTransactionSnapshotRead(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	s, tctx := f.startTxn(t)
	var doc struct{ X int }
	if err := f.coll.FindOne(tctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 1 {
		t.Fatalf("first read in the transaction: %+v, %v", doc, err)
	}
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.coll.FindOne(tctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 1 {
		t.Fatalf("second read in the transaction: %+v, %v; want x 1 (its snapshot)", doc, err)
	}
	_ = s.AbortTransaction(f.ctx)
}

// Two transactions writing one document: the second gets WriteConflict
// (112) labelled TransientTransactionError.
func TestTransactionWriteConflict(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 0}}); err != nil {
		t.Fatal(err)
	}
	a, actx := f.startTxn(t)
	_, b := f.startTxn(t)
	set := func(v int) bson.D { return bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: v}}}} }
	if _, err := f.coll.UpdateOne(actx, bson.D{{Key: "_id", Value: 1}}, set(1)); err != nil {
		t.Fatal(err)
	}
	_, err := f.coll.UpdateOne(b, bson.D{{Key: "_id", Value: 1}}, set(2))
	wantCode(t, err, 112, "second transaction's write")
	var se mongo.ServerError
	if errors.As(err, &se) && !se.HasErrorLabel("TransientTransactionError") {
		t.Errorf("write conflict %v lacks TransientTransactionError", err)
	}
	if err := a.CommitTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}
	var doc struct{ X int }
	if err := f.coll.FindOne(f.ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 1 {
		t.Fatalf("after commit: %+v, %v; want x 1", doc, err)
	}
}

// The change events of a transaction come at commit, in order, with its
// lsid and txnNumber; an aborted transaction leaves none; a stream
// resumed from the first event of a transaction continues with the rest.
func TestTransactionChangeEvents(t *testing.T) {
	f := newFixture(t)
	f.createColl(t)
	cs, err := f.coll.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(f.ctx)

	aborted, actx := f.startTxn(t)
	if _, err := f.coll.InsertOne(actx, bson.D{{Key: "_id", Value: "aborted"}}); err != nil {
		t.Fatal(err)
	}
	if err := aborted.AbortTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}

	s, tctx := f.startTxn(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := f.coll.InsertOne(tctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
	}
	if cs.TryNext(f.ctx) {
		t.Fatalf("event before commit: %s", cs.Current)
	}
	if err := s.CommitTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}
	type event struct {
		ID          bson.Raw `bson:"_id"`
		DocumentKey struct {
			ID string `bson:"_id"`
		} `bson:"documentKey"`
		LSID      bson.Raw `bson:"lsid"`
		TxnNumber *int64   `bson:"txnNumber"`
	}
	var evs []event
	for len(evs) < 3 && cs.Next(f.ctx) {
		var ev event
		if err := cs.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a", "b", "c"} {
		ev := evs[i]
		if ev.DocumentKey.ID != want {
			t.Fatalf("event %d is for %q, want %q (the aborted write must not appear)", i, ev.DocumentKey.ID, want)
		}
		if ev.TxnNumber == nil || ev.LSID == nil {
			t.Fatalf("event %d lacks lsid or txnNumber", i)
		}
		if id, _ := ev.LSID.LookupErr("id"); !id.Equal(s.ID().Lookup("id")) {
			t.Fatalf("event %d lsid %s, want the session's %s", i, ev.LSID, s.ID())
		}
	}
	resumed, err := f.coll.Watch(f.ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(evs[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close(f.ctx)
	for _, want := range []string{"b", "c"} {
		if !resumed.Next(f.ctx) {
			t.Fatalf("resumed stream ended: %v", resumed.Err())
		}
		if got := resumed.Current.Lookup("documentKey", "_id").StringValue(); got != want {
			t.Fatalf("resumed stream gave %q, want %q", got, want)
		}
	}
}

// A snapshot session reads the data as of its first read, whatever is
// written after; a write in it is refused, as on a real server.
func TestSnapshotSession(t *testing.T) {
	f := newFixture(t)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	s, err := f.client.StartSession(options.Session().SetSnapshot(true))
	if err != nil {
		t.Fatal(err)
	}
	defer s.EndSession(f.ctx)
	sctx := mongo.NewSessionContext(f.ctx, s)
	var doc struct{ X int }
	if err := f.coll.FindOne(sctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 1 {
		t.Fatalf("first snapshot read: %+v, %v", doc, err)
	}
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 2}}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.coll.FindOne(sctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil || doc.X != 1 {
		t.Fatalf("second snapshot read: %+v, %v; want x 1", doc, err)
	}
	if _, err := f.coll.InsertOne(sctx, bson.D{{Key: "_id", Value: 2}}); err == nil {
		t.Fatal("insert in a snapshot session succeeded")
	}
}

// txnEvent is what the tests of a transaction's events read of each.
type txnEvent struct {
	ID          bson.Raw       `bson:"_id"`
	ClusterTime bson.Timestamp `bson:"clusterTime"`
	NS          struct {
		Coll string `bson:"coll"`
	} `bson:"ns"`
	DocumentKey struct {
		ID string `bson:"_id"`
	} `bson:"documentKey"`
}

func (e txnEvent) name() string { return e.NS.Coll + "/" + e.DocumentKey.ID }

// readEvents reads n events from cs.
func readEvents(t *testing.T, ctx context.Context, cs *mongo.ChangeStream, n int) []txnEvent {
	t.Helper()
	var evs []txnEvent
	for len(evs) < n {
		if !cs.Next(ctx) {
			t.Fatalf("stream ended after %d of %d events: %v", len(evs), n, cs.Err())
		}
		var ev txnEvent
		if err := cs.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func eventNames(evs []txnEvent) []string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = ev.name()
	}
	return names
}

// As on a real server, whose transaction is one applyOps oplog entry, the
// events of a committed transaction all carry the commit's cluster time
// (the operationTime of the commitTransaction reply); their resume tokens
// still sort strictly in stream order, resuming after (or starting after)
// any of them gives exactly the events that follow it, and
// startAtOperationTime of the commit time gives all of them.
func TestTransactionEventsShareCommitTime(t *testing.T) {
	f := newFixture(t)
	f.createColl(t)
	other := f.db.Collection("audit")
	if err := f.db.CreateCollection(f.ctx, other.Name()); err != nil {
		t.Fatal(err)
	}
	collStream, err := f.coll.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer collStream.Close(f.ctx)
	dbStream, err := f.db.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer dbStream.Close(f.ctx)

	s, tctx := f.startTxn(t)
	// The write to the other collection is an operation of the
	// transaction a collection stream does not show.
	writes := []struct {
		coll *mongo.Collection
		id   string
	}{{f.coll, "a"}, {other, "x"}, {f.coll, "b"}, {f.coll, "c"}}
	for _, w := range writes {
		if _, err := w.coll.InsertOne(tctx, bson.D{{Key: "_id", Value: w.id}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitTransaction(f.ctx); err != nil {
		t.Fatal(err)
	}
	commit := s.OperationTime()
	if commit == nil {
		t.Fatal("no operationTime after commitTransaction")
	}
	// A write after the transaction, so that "the rest" has a known end.
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		cs    *mongo.ChangeStream
		watch func(opts *options.ChangeStreamOptionsBuilder) (*mongo.ChangeStream, error)
		want  []string
	}{
		{"collection", collStream, func(o *options.ChangeStreamOptionsBuilder) (*mongo.ChangeStream, error) {
			return f.coll.Watch(f.ctx, mongo.Pipeline{}, o)
		}, []string{"orders/a", "orders/b", "orders/c", "orders/after"}},
		{"database", dbStream, func(o *options.ChangeStreamOptionsBuilder) (*mongo.ChangeStream, error) {
			return f.db.Watch(f.ctx, mongo.Pipeline{}, o)
		}, []string{"orders/a", "audit/x", "orders/b", "orders/c", "orders/after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := readEvents(t, f.ctx, tc.cs, len(tc.want))
			if got := eventNames(evs); !slices.Equal(got, tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
			txnEvents := evs[:len(evs)-1]
			for i, ev := range txnEvents {
				if ev.ClusterTime != *commit {
					t.Errorf("event %d (%s) has clusterTime %v, want the commit's operationTime %v", i, ev.name(), ev.ClusterTime, *commit)
				}
			}
			if after := evs[len(evs)-1].ClusterTime; after.Compare(*commit) <= 0 {
				t.Errorf("the write after the commit has clusterTime %v, not after the commit's %v", after, *commit)
			}
			for i := 1; i < len(evs); i++ {
				a, b := evs[i-1].ID.Lookup("_data").StringValue(), evs[i].ID.Lookup("_data").StringValue()
				if a >= b {
					t.Errorf("token of event %d (%s) %s does not sort before that of event %d (%s) %s", i-1, evs[i-1].name(), a, i, evs[i].name(), b)
				}
			}
			for i, ev := range evs[:len(evs)-1] {
				for _, o := range []struct {
					name string
					opts *options.ChangeStreamOptionsBuilder
				}{
					{"resumeAfter", options.ChangeStream().SetResumeAfter(ev.ID)},
					{"startAfter", options.ChangeStream().SetStartAfter(ev.ID)},
				} {
					cs, err := tc.watch(o.opts)
					if err != nil {
						t.Fatalf("%s event %d (%s): %v", o.name, i, ev.name(), err)
					}
					got := eventNames(readEvents(t, f.ctx, cs, len(tc.want)-i-1))
					cs.Close(f.ctx)
					if want := tc.want[i+1:]; !slices.Equal(got, want) {
						t.Errorf("%s event %d (%s): %v, want %v", o.name, i, ev.name(), got, want)
					}
				}
			}
			cs, err := tc.watch(options.ChangeStream().SetStartAtOperationTime(commit))
			if err != nil {
				t.Fatalf("startAtOperationTime %v: %v", *commit, err)
			}
			defer cs.Close(f.ctx)
			if got := eventNames(readEvents(t, f.ctx, cs, len(tc.want))); !slices.Equal(got, tc.want) {
				t.Errorf("startAtOperationTime of the commit: %v, want %v", got, tc.want)
			}
		})
	}
}
