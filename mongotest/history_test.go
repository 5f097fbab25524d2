package mongotest_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// insertAndCollect inserts documents with the given ids into a watched
// collection and returns the resume token and cluster time of each event.
func insertAndCollect(t *testing.T, ctx context.Context, coll *mongo.Collection, ids ...int) ([]bson.Raw, []bson.Timestamp) {
	t.Helper()
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	var tokens []bson.Raw
	var times []bson.Timestamp
	for _, id := range ids {
		// One at a time: the stream must not fall behind a short history.
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
		if !cs.Next(ctx) {
			t.Fatalf("Next: %v", cs.Err())
		}
		var ev struct {
			ID          bson.Raw       `bson:"_id"`
			ClusterTime bson.Timestamp `bson:"clusterTime"`
		}
		if err := cs.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, ev.ID)
		times = append(times, ev.ClusterTime)
	}
	return tokens, times
}

// wantHistoryLost checks err is ChangeStreamHistoryLost (286) labelled
// NonResumableChangeStreamError.
func wantHistoryLost(t *testing.T, err error) {
	t.Helper()
	var se mongo.ServerError
	if !errors.As(err, &se) || !se.HasErrorCode(286) || !se.HasErrorLabel("NonResumableChangeStreamError") {
		t.Fatalf("error = %v, want ChangeStreamHistoryLost (286) labelled NonResumableChangeStreamError", err)
	}
}

// firstDocKey opens a stream with opts and returns the documentKey._id of
// its first event.
func firstDocKey(t *testing.T, ctx context.Context, coll *mongo.Collection, opts *options.ChangeStreamOptionsBuilder) int32 {
	t.Helper()
	cs, err := coll.Watch(ctx, mongo.Pipeline{}, opts)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer cs.Close(ctx)
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	return cs.Current.Lookup("documentKey", "_id").Int32()
}

func TestHistoryLimit(t *testing.T) {
	srv := mongotest.New(t, &mongotest.Options{HistoryLimit: 3})
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("hist").Collection("c")
	tokens, times := insertAndCollect(t, ctx, coll, 1, 2, 3, 4, 5)
	// Entries 3, 4 and 5 are kept.
	tests := []struct {
		name string
		opts *options.ChangeStreamOptionsBuilder
		lost bool
		want int32
	}{
		{"resumeAfter a dropped event", options.ChangeStream().SetResumeAfter(tokens[0]), true, 0},
		{"startAfter a dropped event", options.ChangeStream().SetStartAfter(tokens[0]), true, 0},
		{"startAtOperationTime of a dropped event", options.ChangeStream().SetStartAtOperationTime(&times[1]), true, 0},
		{"resumeAfter the newest dropped event", options.ChangeStream().SetResumeAfter(tokens[1]), false, 3},
		{"resumeAfter a kept event", options.ChangeStream().SetResumeAfter(tokens[2]), false, 4},
		{"startAtOperationTime of the oldest kept event", options.ChangeStream().SetStartAtOperationTime(&times[2]), false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lost {
				cs, err := coll.Watch(ctx, mongo.Pipeline{}, tc.opts)
				if err == nil {
					cs.Close(ctx)
				}
				wantHistoryLost(t, err)
				return
			}
			if got := firstDocKey(t, ctx, coll, tc.opts); got != tc.want {
				t.Errorf("first event is for _id %d, want %d", got, tc.want)
			}
		})
	}
}

func TestHistoryLimitNegative(t *testing.T) {
	if srv, err := mongotest.NewServer(&mongotest.Options{HistoryLimit: -1}); err == nil {
		srv.Close()
		t.Fatal("NewServer accepted HistoryLimit -1")
	}
}

func TestTruncateHistory(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("hist").Collection("c")
	tokens, _ := insertAndCollect(t, ctx, coll, 1, 2)
	srv.TruncateHistory()

	cs, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(tokens[0]))
	if err == nil {
		cs.Close(ctx)
	}
	wantHistoryLost(t, err)

	// A consumer that had seen everything loses nothing: it resumes.
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	if got := firstDocKey(t, ctx, coll, options.ChangeStream().SetResumeAfter(tokens[1])); got != 3 {
		t.Errorf("first event after resuming is for _id %d, want 3", got)
	}
}

// TestLiveCursorFallsBehindHistory checks a change stream whose next event
// was dropped from the history while it was open, by the history limit or
// by TruncateHistory. As on a real server (its jstest
// change_stream_oplog_rollover.js: "attempting to continue reading an
// existing change stream throws CappedPositionLost"), the getMore fails
// with CappedPositionLost (136) without error labels, which the driver
// does not resume; a resume from the stream's token then fails with
// ChangeStreamHistoryLost (286).
func TestLiveCursorFallsBehindHistory(t *testing.T) {
	tests := []struct {
		name  string
		opts  *mongotest.Options
		write func(ctx context.Context, t *testing.T, srv *mongotest.Server, coll *mongo.Collection)
	}{
		{"history limit", &mongotest.Options{HistoryLimit: 2}, func(ctx context.Context, t *testing.T, _ *mongotest.Server, coll *mongo.Collection) {
			for id := 1; id <= 3; id++ { // the first insert falls out of the history
				if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"TruncateHistory", nil, func(ctx context.Context, t *testing.T, srv *mongotest.Server, coll *mongo.Collection) {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
				t.Fatal(err)
			}
			srv.TruncateHistory()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mongotest.New(t, tc.opts)
			var aggregates atomic.Int32
			mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
				if e.CommandName == "aggregate" {
					aggregates.Add(1)
				}
			}}
			client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			coll := client.Database("hist").Collection("c")
			cs, err := coll.Watch(ctx, mongo.Pipeline{})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			token := cs.ResumeToken()
			tc.write(ctx, t, srv, coll)
			if cs.Next(ctx) {
				t.Fatalf("Next returned an event past lost history: %s", cs.Current)
			}
			var se mongo.ServerError
			if !errors.As(cs.Err(), &se) || !se.HasErrorCode(136) {
				t.Fatalf("Err = %v, want CappedPositionLost (136)", cs.Err())
			}
			var ce mongo.CommandError
			if errors.As(cs.Err(), &ce) && len(ce.Labels) > 0 {
				t.Errorf("CappedPositionLost carries labels %v, want none", ce.Labels)
			}
			if n := aggregates.Load(); n != 1 {
				t.Errorf("the driver sent %d aggregates, want 1: it must not resume", n)
			}
			if n := srv.OpenCursors(); n != 0 {
				t.Errorf("%d cursors open after the failed getMore, want 0", n)
			}
			// Resuming by hand from the last token fails for good.
			cs2, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(token))
			if err == nil {
				cs2.Close(ctx)
			}
			wantHistoryLost(t, err)
		})
	}
}

// The events of a transaction share the commit's cluster time, so the
// history limit can drop part of them: a token of a dropped one older
// than the newest dropped has lost history, though its time is that of
// events still kept, and so has the commit's time.
func TestHistoryLimitInTransaction(t *testing.T) {
	srv := mongotest.New(t, &mongotest.Options{HistoryLimit: 3})
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := client.Database("hist")
	if err := db.CreateCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	coll := db.Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	sess, err := client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	if _, err := sess.WithTransaction(ctx, func(sctx context.Context) (any, error) {
		for _, id := range []int32{2, 3, 4} {
			if _, err := coll.InsertOne(sctx, bson.D{{Key: "_id", Value: id}}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	commit := *sess.OperationTime()
	var tokens []bson.Raw
	for range 3 {
		if !cs.Next(ctx) {
			t.Fatalf("Next: %v", cs.Err())
		}
		if ts, i := cs.Current.Lookup("clusterTime").Timestamp(); (bson.Timestamp{T: ts, I: i}) != commit {
			t.Fatalf("event clusterTime {%d %d}, want the commit's %v", ts, i, commit)
		}
		tokens = append(tokens, cs.Current.Lookup("_id").Document())
	}
	// Caught up at the commit's time, the stream's postBatchResumeToken
	// is its last event's token.
	if got := cs.ResumeToken(); !bytes.Equal(got, tokens[2]) {
		t.Errorf("resume token after the transaction's events %s, want the last event's %s", got, tokens[2])
	}
	lost := func(name string, opts *options.ChangeStreamOptionsBuilder) {
		t.Helper()
		cs, err := coll.Watch(ctx, mongo.Pipeline{}, opts)
		if err == nil {
			cs.Close(ctx)
		}
		if err == nil {
			t.Fatalf("%s: resumed, want ChangeStreamHistoryLost", name)
		}
		wantHistoryLost(t, err)
	}
	insert := func(id int32) {
		t.Helper()
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
	}

	insert(5) // drops the transaction's first event
	if got := firstDocKey(t, ctx, coll, options.ChangeStream().SetResumeAfter(tokens[0])); got != 3 {
		t.Errorf("resumeAfter the newest dropped event: first event for _id %d, want 3", got)
	}
	lost("startAtOperationTime of the commit", options.ChangeStream().SetStartAtOperationTime(&commit))

	insert(6) // drops the second
	lost("resumeAfter the first event", options.ChangeStream().SetResumeAfter(tokens[0]))
	if got := firstDocKey(t, ctx, coll, options.ChangeStream().SetResumeAfter(tokens[1])); got != 4 {
		t.Errorf("resumeAfter the newest dropped event: first event for _id %d, want 4", got)
	}
	if got := firstDocKey(t, ctx, coll, options.ChangeStream().SetResumeAfter(tokens[2])); got != 5 {
		t.Errorf("resumeAfter the transaction's last event: first event for _id %d, want 5", got)
	}
}
