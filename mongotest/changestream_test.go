package mongotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// nextEvent returns the next event's operationType and token.
func nextEvent(ctx context.Context, t *testing.T, cs *mongo.ChangeStream) (string, bson.Raw) {
	t.Helper()
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	op, _ := cs.Current.Lookup("operationType").StringValueOK()
	return op, cs.Current.Lookup("_id").Document()
}

func TestInvalidateTokens(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("db").Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []string
	var invalidate bson.Raw
	for range 3 {
		op, tok := nextEvent(ctx, t, cs)
		ops = append(ops, op)
		invalidate = tok
	}
	if want := []string{"insert", "drop", "invalidate"}; len(ops) != 3 || ops[0] != want[0] || ops[1] != want[1] || ops[2] != want[2] {
		t.Fatalf("events %v, want %v", ops, want)
	}
	if cs.Next(ctx) || cs.Err() != nil || cs.ID() != 0 {
		t.Fatalf("after invalidate: Next true or Err %v or ID %d; want a closed cursor", cs.Err(), cs.ID())
	}

	t.Run("resumeAfter is refused", func(t *testing.T) {
		_, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(invalidate))
		var ce mongo.CommandError
		if !errors.As(err, &ce) || ce.Code != 260 {
			t.Fatalf("err = %v, want InvalidResumeToken (260)", err)
		}
	})
	t.Run("startAfter continues", func(t *testing.T) {
		cs2, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetStartAfter(invalidate))
		if err != nil {
			t.Fatal(err)
		}
		defer cs2.Close(ctx)
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
			t.Fatal(err)
		}
		if op, _ := nextEvent(ctx, t, cs2); op != "insert" {
			t.Fatalf("first event after startAfter: %s, want the new insert", op)
		}
	})
}

func TestHistoryLost(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("db").Collection("c")
	start := srv.ClusterTime()
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	for i := range 2 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	_, tok := nextEvent(ctx, t, cs)
	srv.TruncateHistory()

	tests := []struct {
		name string
		opts *options.ChangeStreamOptionsBuilder
	}{
		{"resumeAfter", options.ChangeStream().SetResumeAfter(tok)},
		{"startAtOperationTime", options.ChangeStream().SetStartAtOperationTime(&start)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := coll.Watch(ctx, mongo.Pipeline{}, tc.opts)
			var ce mongo.CommandError
			if !errors.As(err, &ce) || ce.Code != 286 || !ce.HasErrorLabel("NonResumableChangeStreamError") {
				t.Fatalf("err = %v, want ChangeStreamHistoryLost (286) labelled NonResumableChangeStreamError", err)
			}
		})
	}
}
