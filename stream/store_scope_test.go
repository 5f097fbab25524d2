package stream_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// wrappedStore is a user's TokenStore around a CollectionStore that
// forwards its Collection method.
type wrappedStore struct{ *stream.CollectionStore }

// A database or deployment stream whose scope includes the collection of
// its CollectionStore does not see its own checkpoint saves: after a user
// write, the next event is the next user write, never a save. Before, each
// save was an event and each event a save, without end.
func TestStreamExcludesItsCheckpointCollection(t *testing.T) {
	tests := []struct {
		name    string
		watcher func(f *fixture) stream.Watcher
		wrap    bool
	}{
		{name: "database stream", watcher: func(f *fixture) stream.Watcher { return f.db }},
		{name: "deployment stream", watcher: func(f *fixture) stream.Watcher { return f.client }},
		{name: "database stream, wrapped store", watcher: func(f *fixture) stream.Watcher { return f.db }, wrap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			cs, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
			if err != nil {
				t.Fatal(err)
			}
			var store stream.TokenStore = cs
			if tt.wrap {
				store = wrappedStore{cs}
			}
			// Only this test's database: a real deployment has others.
			pipeline := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "ns.db", Value: f.db.Name()}}}}}
			s, err := stream.Watch[stream.Event[Order]](f.ctx, tt.watcher(f), pipeline,
				&stream.Options{Store: store, Name: "self", CheckpointEvery: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			for id := 1; id <= 3; id++ {
				f.insert(t, Order{ID: id})
				ev := nextOrder(t, f.ctx, s)
				if ev.NS.Coll != "orders" || ev.FullDocument == nil || ev.FullDocument.ID != id {
					t.Fatalf("event %d: %s on %s.%s (%v), want the insert of order %d: the stream sees its own checkpoints",
						id, ev.OperationType, ev.NS.DB, ev.NS.Coll, ev.FullDocument, id)
				}
			}
			// The checkpoints were saved all the same.
			cp, err := cs.Load(f.ctx, "self")
			if err != nil || cp.Token.IsZero() {
				t.Fatalf("Load: %v, %v; want the checkpoint saved", cp, err)
			}
			// The exclusion runs on the server, as the first stage.
			aggs := f.mon.commands("aggregate")
			first := aggs[len(aggs)-1].Lookup("pipeline", "1")
			if !strings.Contains(first.String(), `"$nor"`) || !strings.Contains(first.String(), `"checkpoints"`) {
				t.Errorf("stage after $changeStream: %v, want the $match excluding the checkpoint collection", first)
			}
		})
	}
}

// A stream on the store's own collection is refused at Watch; streams that
// do not include it keep their pipeline as it is.
func TestStreamOnItsCheckpointCollection(t *testing.T) {
	f := newFixture(t)
	cs, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Watch[bson.Raw](f.ctx, f.db.Collection("checkpoints"), nil, &stream.Options{Store: cs, Name: "self"})
	if err == nil || !strings.Contains(err.Error(), "the collection its Options.Store keeps checkpoints in") {
		t.Fatalf("Watch on the checkpoint collection: %v, want it refused", err)
	}
	if n := len(f.mon.commands("aggregate")); n != 0 {
		t.Errorf("%d aggregates sent for a refused Watch", n)
	}

	other := f.client.Database(f.db.Name() + "_other")
	for i, target := range []stream.Watcher{f.coll, other} {
		// One name per target: a checkpoint of one is refused by the other.
		s, err := stream.Watch[bson.Raw](f.ctx, target, nil, &stream.Options{Store: cs, Name: fmt.Sprint("other", i)})
		if err != nil {
			t.Fatal(err)
		}
		s.Close(f.ctx)
		aggs := f.mon.commands("aggregate")
		if p := aggs[len(aggs)-1].Lookup("pipeline", "1"); p.Type != 0 {
			t.Errorf("stream on %T: pipeline has a stage %v, want none", target, p)
		}
	}
}
