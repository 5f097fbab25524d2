package mongotest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestChangeStreamBatchSize checks that cursor.batchSize bounds the first
// batch of a change stream, 0 asking for an empty one as on a real server,
// while a getMore without batchSize returns everything waiting.
func TestChangeStreamBatchSize(t *testing.T) {
	srv := mongotest.New(t, nil)
	var mu sync.Mutex
	replies := map[string][]bson.Raw{} // command name → replies
	mon := &event.CommandMonitor{Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		mu.Lock()
		replies[e.CommandName] = append(replies[e.CommandName], bson.Raw(append([]byte(nil), e.Reply...)))
		mu.Unlock()
	}}
	client := connectWith(t, options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("db").Collection("c")
	start := srv.ClusterTime()
	const n = 5
	for i := range n {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	batchLen := func(t *testing.T, reply bson.Raw, key string) int {
		t.Helper()
		arr, ok := reply.Lookup("cursor", key).ArrayOK()
		if !ok {
			t.Fatalf("reply has no cursor.%s: %s", key, reply)
		}
		vals, err := arr.Values()
		if err != nil {
			t.Fatal(err)
		}
		return len(vals)
	}

	tests := []struct {
		name      string
		batchSize *int32
		wantFirst int
	}{
		{"absent", nil, n},
		{"0", batchSizeOf(0), 0},
		{"2", batchSizeOf(2), 2},
		{"larger than the events", batchSizeOf(100), n},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			clear(replies)
			mu.Unlock()
			opts := options.ChangeStream().SetStartAtOperationTime(&start)
			if tc.batchSize != nil {
				opts.SetBatchSize(*tc.batchSize)
			}
			cs, err := coll.Watch(ctx, mongo.Pipeline{}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			for i := range n {
				if !cs.Next(ctx) {
					t.Fatalf("Next %d: %v", i, cs.Err())
				}
				if id := cs.Current.Lookup("documentKey", "_id").Int32(); id != int32(i) {
					t.Fatalf("event %d is for _id %d", i, id)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			aggs := replies["aggregate"]
			if len(aggs) != 1 {
				t.Fatalf("%d aggregate replies, want 1", len(aggs))
			}
			if got := batchLen(t, aggs[0], "firstBatch"); got != tc.wantFirst {
				t.Errorf("firstBatch holds %d events, want %d", got, tc.wantFirst)
			}
			if id := aggs[0].Lookup("cursor", "id").Int64(); id == 0 {
				t.Error("cursor id 0 after the first batch: the stream ended")
			}
			if _, ok := aggs[0].Lookup("cursor", "postBatchResumeToken").DocumentOK(); !ok {
				t.Errorf("no postBatchResumeToken: %s", aggs[0])
			}
			got := 0
			for _, r := range replies["getMore"] {
				got += batchLen(t, r, "nextBatch")
			}
			if got+tc.wantFirst != n {
				t.Errorf("getMores returned %d events, want %d", got, n-tc.wantFirst)
			}
			if tc.batchSize == nil || *tc.batchSize == 0 {
				// No count limit on getMore: the rest comes in one batch.
				if len(replies["getMore"]) > 1 {
					t.Errorf("%d getMores, want at most 1", len(replies["getMore"]))
				}
			}
		})
	}

	// The empty first batch's postBatchResumeToken resumes before the
	// first event.
	t.Run("resume from an empty first batch", func(t *testing.T) {
		var res bson.Raw
		err := client.Database("db").RunCommand(ctx, bson.D{
			{Key: "aggregate", Value: "c"},
			{Key: "pipeline", Value: bson.A{bson.D{{Key: "$changeStream", Value: bson.D{{Key: "startAtOperationTime", Value: start}}}}}},
			{Key: "cursor", Value: bson.D{{Key: "batchSize", Value: 0}}},
		}).Decode(&res)
		if err != nil {
			t.Fatal(err)
		}
		if got := batchLen(t, res, "firstBatch"); got != 0 {
			t.Fatalf("firstBatch holds %d events, want 0", got)
		}
		pbrt := res.Lookup("cursor", "postBatchResumeToken").Document()
		id := res.Lookup("cursor", "id").Int64()
		defer client.Database("db").RunCommand(ctx, bson.D{{Key: "killCursors", Value: "c"}, {Key: "cursors", Value: bson.A{id}}})
		if got := firstDocKey(t, ctx, coll, options.ChangeStream().SetResumeAfter(pbrt)); got != 0 {
			t.Errorf("resuming from the postBatchResumeToken starts at _id %d, want 0", got)
		}
	})
}

func batchSizeOf(n int32) *int32 { return &n }
