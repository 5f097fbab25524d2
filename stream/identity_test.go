package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A checkpoint records what its stream tracks, every store gives that back,
// and Watch refuses the checkpoint of another namespace, pipeline or
// event-changing option, with an error that says so.
func TestCheckpointIdentityRefusesAnotherStream(t *testing.T) {
	f := newFixture(t)
	fs, err := stream.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stores := []struct {
		name  string
		store stream.TokenStore
	}{{"memory", &stream.MemoryStore{}}, {"file", fs}, {"collection", cs}}
	match := func(item string) mongo.Pipeline {
		return mongo.Pipeline{{{Key: "$match", Value: bson.M{"fullDocument.item": item, "operationType": "insert"}}}}
	}
	for i, sc := range stores {
		name, store, base := sc.name, sc.store, 10*i
		t.Run(name, func(t *testing.T) {
			o := &stream.Options{Store: store, Name: "orders-" + name, CheckpointEvery: 1}
			watch := func(target stream.Watcher, p any, opt *stream.Options, cso ...options.Lister[options.ChangeStreamOptions]) (*stream.Stream[stream.Event[Order]], error) {
				s, err := stream.Watch[stream.Event[Order]](f.ctx, target, p, opt, cso...)
				if err == nil {
					t.Cleanup(func() { _ = s.Close(context.Background()) })
				}
				return s, err
			}
			s, err := watch(f.coll, match("tea"), o)
			if err != nil {
				t.Fatal(err)
			}
			f.insert(t, Order{ID: base + 1, Item: "tea"})
			nextOrder(t, f.ctx, s)
			if err := s.Close(f.ctx); err != nil {
				t.Fatal(err)
			}
			cp, err := store.Load(f.ctx, o.Name)
			if err != nil {
				t.Fatal(err)
			}
			want := "collection " + f.db.Name() + ".orders"
			if cp.Identity.Target != want || !strings.HasPrefix(cp.Identity.Fingerprint, "v1:") {
				t.Fatalf("stored identity %+v, want target %q and a v1 fingerprint", cp.Identity, want)
			}

			refused := []struct {
				what   string
				target stream.Watcher
				p      any
				cso    []options.Lister[options.ChangeStreamOptions]
				in     string
			}{
				{"another collection", f.db.Collection("returns"), match("tea"), nil, "different target"},
				{"the database", f.db, match("tea"), nil, "different target"},
				{"the deployment", f.client, match("tea"), nil, "different target"},
				{"another pipeline", f.coll, match("cake"), nil, "different pipeline"},
				{"no pipeline", f.coll, nil, nil, "different pipeline"},
				{"fullDocument", f.coll, match("tea"), []options.Lister[options.ChangeStreamOptions]{options.ChangeStream().SetFullDocument(options.UpdateLookup)}, "different pipeline"},
			}
			for _, c := range refused {
				_, err := watch(c.target, c.p, o, c.cso...)
				var me *stream.CheckpointMismatchError
				if !errors.As(err, &me) || !errors.Is(err, stream.ErrCheckpointMismatch) {
					t.Fatalf("%s: Watch = %v, want a *CheckpointMismatchError", c.what, err)
				}
				if !strings.Contains(err.Error(), c.in) || !strings.Contains(err.Error(), o.Name) || me.Saved != cp.Identity {
					t.Errorf("%s: error %q (saved %+v), want it to name the stream and say %q", c.what, err, me.Saved, c.in)
				}
			}
			if cp2, err := store.Load(f.ctx, o.Name); err != nil || !cp2.Token.Equal(cp.Token) {
				t.Fatalf("after the refusals the checkpoint is %v, %v; want it unchanged", cp2.Token, err)
			}

			// Options that only change how events are fetched are not part
			// of the identity; a bson.M with several fields hashes the same
			// at every run; the same stream resumes.
			f.insert(t, Order{ID: base + 2, Item: "tea"})
			s2, err := watch(f.coll, match("tea"), o, options.ChangeStream().SetBatchSize(7).SetMaxAwaitTime(1e9))
			if err != nil {
				t.Fatalf("the same stream: %v", err)
			}
			nextIDs(t, f, s2, base+2)
			s2.Close(f.ctx)

			// A pipeline changed on purpose, with AcceptChangedPipeline.
			f.insert(t, Order{ID: base + 3, Item: "cake"})
			accept := *o
			accept.AcceptChangedPipeline = true
			s3, err := watch(f.coll, match("cake"), &accept)
			if err != nil {
				t.Fatalf("AcceptChangedPipeline: %v", err)
			}
			nextIDs(t, f, s3, base+3)
			s3.Close(f.ctx)
			if _, err := watch(f.coll, match("tea"), o); !errors.Is(err, stream.ErrCheckpointMismatch) {
				t.Fatalf("after the accepted change the old pipeline: %v, want refused", err)
			}
			if _, err := watch(f.db.Collection("returns"), match("cake"), &accept); !errors.Is(err, stream.ErrCheckpointMismatch) {
				t.Fatalf("AcceptChangedPipeline with another target: %v, want refused", err)
			}
		})
	}
}

// A checkpoint saved without an identity (by an older version, or by hand)
// is accepted, and the next save stamps the identity on it.
func TestCheckpointWithoutIdentityIsAccepted(t *testing.T) {
	f := newFixture(t)
	store := &stream.MemoryStore{}
	o := &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1}
	s := watchWith(t, f, o)
	f.insert(t, Order{ID: 1})
	nextIDs(t, f, s, 1)
	s.Close(f.ctx)
	cp, _ := store.Load(f.ctx, "orders")
	id := cp.Identity
	cp.Identity = stream.Identity{}
	if err := store.Save(f.ctx, "orders", cp); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 2})
	s2 := watchWith(t, f, o)
	nextIDs(t, f, s2, 2)
	if err := s2.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if cp, _ := store.Load(f.ctx, "orders"); cp.Identity != id {
		t.Fatalf("identity after the next save %+v, want %+v", cp.Identity, id)
	}
}
