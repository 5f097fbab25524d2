package stream

import (
	"context"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Close that comes after Next delivered an event to All and before the
// loop body got it does not commit that event: a restart delivers it
// again. (The window is a few instructions wide; the test's hook holds it
// open.)
func TestCloseBeforeTheBodyDoesNotCommit(t *testing.T) {
	srv := mongotest.New(t, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	coll := client.Database("t").Collection("c")
	store := &MemoryStore{}
	opts := &Options{Store: store, Name: "c", CheckpointEvery: 1}
	s, err := Watch[bson.Raw](ctx, coll, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	delivered := 0
	s.afterNext = func() {
		if delivered++; delivered == 2 {
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	}
	for _, err := range s.All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if delivered != 3 { // two events, then ErrClosed
		t.Fatalf("%d calls of Next, want 3", delivered)
	}

	again, err := Watch[bson.Raw](ctx, coll, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	ev, err := again.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id := ev.Lookup("documentKey", "_id").Int32(); id != 2 {
		t.Fatalf("after the restart the first event is the insert of %d, want 2 (Close committed an event whose body had not run)", id)
	}
}
