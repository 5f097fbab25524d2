package stream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// One active consumer per name: a second instance waits in Watch as a
// standby and takes over at once when the active one closes; its first
// event is the one after the closed instance's checkpoint.
func TestLeaseStandbyTakesOverOnClose(t *testing.T) {
	f := newFixture(t)
	store, err := stream.NewCollectionStore(f.db.Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(inst string) *stream.Options {
		return &stream.Options{Store: store, Name: "orders", LeaseTTL: 2 * time.Second, Instance: inst, CheckpointEvery: 1}
	}
	a, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts("a"))
	if err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Role != "active" || st.LeaseEpoch != 1 {
		t.Fatalf("a: role %q epoch %d, want active at epoch 1", st.Role, st.LeaseEpoch)
	}
	type result struct {
		s   *stream.Stream[stream.Event[Order]]
		err error
	}
	bc := make(chan result, 1)
	go func() {
		s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, opts("b"))
		bc <- result{s, err}
	}()
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	nextIDs(t, f, a, 1, 2)
	select {
	case r := <-bc:
		t.Fatalf("b became active while a holds the lease: %v", r.err)
	default:
	}
	if err := a.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	r := <-bc
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close(context.Background())
	if st := r.s.Stats(); st.Role != "active" || st.LeaseEpoch != 2 {
		t.Fatalf("b: role %q epoch %d, want active at epoch 2", st.Role, st.LeaseEpoch)
	}
	f.insert(t, Order{ID: 3})
	nextIDs(t, f, r.s, 3)
}

// A holder whose lease was taken over cannot move the checkpoint, and its
// stream ends with ErrLeaseLost before it delivers another event.
func TestLeaseFencesAnOldOwner(t *testing.T) {
	f := newFixture(t)
	cps := f.db.Collection("checkpoints")
	store, err := stream.NewCollectionStore(cps, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &stream.Options{Store: store, Name: "orders", LeaseTTL: 5 * time.Second, Instance: "a", CheckpointEvery: 1}
	a, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	nextIDs(t, f, a, 1, 2) // commits 1
	before, err := store.Load(f.ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// Another instance takes over, as a standby would after a stall.
	if _, err := cps.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: "orders"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease.owner", Value: "b"}}}, {Key: "$inc", Value: bson.D{{Key: "lease.epoch", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = a.Next(f.ctx) // commits 2: the save is refused
	if !errors.Is(err, stream.ErrLeaseLost) {
		t.Fatalf("Next after the takeover: %v, want ErrLeaseLost", err)
	}
	if _, err := a.Next(f.ctx); !errors.Is(err, stream.ErrLeaseLost) {
		t.Fatalf("Next again: %v, want ErrLeaseLost", err)
	}
	after, err := store.Load(f.ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Token.Equal(before.Token) {
		t.Fatal("the fenced owner moved the checkpoint")
	}
	if st := a.Stats(); st.Role != "lost" {
		t.Fatalf("role %q, want lost", st.Role)
	}
	if err := a.Close(f.ctx); !errors.Is(err, stream.ErrLeaseLost) {
		t.Fatalf("Close: %v, want the refused final save (ErrLeaseLost)", err)
	}
}

// LeaseTTL needs a store that can hold a lease.
func TestLeaseNeedsCollectionStore(t *testing.T) {
	f := newFixture(t)
	_, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, &stream.Options{Store: &stream.MemoryStore{}, Name: "x", LeaseTTL: time.Second})
	if err == nil {
		t.Fatal("LeaseTTL with a MemoryStore: no error")
	}
}
