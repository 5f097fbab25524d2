package stream_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// gatedDoc decodes through its own UnmarshalBSON (so through the client's
// registry, never a compiled plan); the decode of the document the current
// gate names waits until the test opens the gate.
type gatedDoc struct{ ID int }

type docGate struct {
	id      int
	entered chan struct{} // closed when the decode of id starts
	release chan struct{} // closed by the test to let it finish
}

var currentGate atomic.Pointer[docGate]

func (d *gatedDoc) UnmarshalBSON(b []byte) error {
	var v struct {
		ID int `bson:"_id"`
	}
	if err := bson.Unmarshal(b, &v); err != nil {
		return err
	}
	d.ID = v.ID
	if g := currentGate.Load(); g != nil && g.id == v.ID {
		close(g.entered)
		<-g.release
	}
	return nil
}

// setGate makes the decode of document id wait; the gate is opened and
// removed at the end of the test.
func setGate(t *testing.T, id int) *docGate {
	g := &docGate{id: id, entered: make(chan struct{}), release: make(chan struct{})}
	currentGate.Store(g)
	t.Cleanup(func() {
		currentGate.Store(nil)
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	return g
}

// needCores makes sure decoding ahead has a core to run on.
func needCores(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// waitEntered waits until the gated decode started: on another goroutine,
// while the caller holds an earlier event.
func waitEntered(t *testing.T, ctx context.Context, g *docGate) {
	t.Helper()
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatal("document 5 was never decoded ahead of its delivery")
	}
}

func nextGated(t *testing.T, ctx context.Context, s *stream.Stream[stream.Event[gatedDoc]]) stream.Event[gatedDoc] {
	t.Helper()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// While the events of a batch are decoded ahead, the position and every
// checkpoint stay at the events returned: the consumer holds event 2 while
// events 3 and 4 are decoded and 5 is being decoded, and ResumeToken is
// event 2's, the checkpoint event 1's.
func TestDecodeAheadNeverMovesTheCheckpointAheadOfDelivery(t *testing.T) {
	needCores(t)
	f := newFixture(t)
	store := &stream.MemoryStore{}
	opts := &stream.Options{Store: store, Name: "ahead", CheckpointEvery: 1, DecodeAhead: true}
	s, err := stream.Watch[stream.Event[gatedDoc]](f.ctx, f.coll, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	g := setGate(t, 5)
	for i := 1; i <= 8; i++ {
		f.insert(t, Order{ID: i})
	}
	before := streamGoroutines()
	ev1 := nextGated(t, f.ctx, s)
	ev2 := nextGated(t, f.ctx, s)
	if ev1.FullDocument.ID != 1 || ev2.FullDocument.ID != 2 {
		t.Fatalf("orders %d, %d; want 1, 2", ev1.FullDocument.ID, ev2.FullDocument.ID)
	}
	waitEntered(t, f.ctx, g)
	if n := newGoroutines(before, streamGoroutines()); n == 0 {
		t.Fatal("no decoder goroutine while document 5 is decoded: it was not decoded ahead")
	}
	if got := s.ResumeToken(); !got.Equal(ev2.ID) {
		t.Errorf("ResumeToken %v while event 2 is held, want event 2's %v", got, ev2.ID)
	}
	checkSaved(t, f.ctx, store, ev1.ID)
	close(g.release)
	prev := ev2
	for want := 3; want <= 8; want++ {
		ev := nextGated(t, f.ctx, s)
		if ev.FullDocument.ID != want {
			t.Fatalf("order %d, want %d", ev.FullDocument.ID, want)
		}
		if got := s.ResumeToken(); want < 8 && !got.Equal(ev.ID) {
			t.Errorf("ResumeToken %v after event %d, want its token %v", got, want, ev.ID)
		}
		checkSaved(t, f.ctx, store, prev.ID)
		prev = ev
	}
}

// checkSaved checks that the saved checkpoint is tok.
func checkSaved(t *testing.T, ctx context.Context, store stream.TokenStore, tok stream.Token) {
	t.Helper()
	cp, err := store.Load(ctx, "ahead")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !cp.Token.Equal(tok) {
		t.Errorf("checkpoint %v, want %v", cp.Token, tok)
	}
}

// Close while an event is being decoded ahead waits for that decode and
// leaves no goroutine of the stream behind; the events decoded and not
// returned are not committed.
func TestCloseDuringDecodeAhead(t *testing.T) {
	needCores(t)
	before := streamGoroutines()
	f := newFixture(t)
	store := &stream.MemoryStore{}
	s, err := stream.Watch[stream.Event[gatedDoc]](f.ctx, f.coll, nil, &stream.Options{Store: store, Name: "ahead", DecodeAhead: true})
	if err != nil {
		t.Fatal(err)
	}
	g := setGate(t, 5)
	for i := 1; i <= 8; i++ {
		f.insert(t, Order{ID: i})
	}
	nextGated(t, f.ctx, s)
	ev2 := nextGated(t, f.ctx, s)
	waitEntered(t, f.ctx, g)
	if n := newGoroutines(before, streamGoroutines()); n == 0 {
		t.Fatal("no decoder goroutine while document 5 is decoded: it was not decoded ahead")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(f.ctx) }()
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := leftGoroutines(before); n != 0 {
		t.Fatalf("%d stream goroutines after Close", n)
	}
	checkSaved(t, f.ctx, store, ev2.ID)
	if _, err := s.Next(f.ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

// Across many batches, with decode errors and split events among them,
// events come in stream order, each decode error in its place, with or
// without decoding ahead.
func TestDecodeAheadKeepsStreamOrder(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("DecodeAhead=%v", on), func(t *testing.T) {
			needCores(t)
			f := newFixture(t)
			coll, _ := largeCollection(t, f)
			cs := options.ChangeStream().SetFullDocumentBeforeChange(options.Required).SetBatchSize(5)
			opts := &stream.Options{SplitEvents: true, DecodeAhead: on}
			s, err := stream.Watch[stream.Event[bigDoc]](f.ctx, coll, nil, opts, cs)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			var want []string
			fill := []string{"y", "z"}
			for i := 2; i <= 41; i++ {
				doc := bson.D{{Key: "_id", Value: i}, {Key: "value", Value: "v"}}
				what := fmt.Sprint("insert ", i)
				if i%6 == 0 {
					doc[1].Value = i // not a string: a *DecodeError
					what = fmt.Sprint("DecodeError ", i)
				}
				if _, err := coll.InsertOne(f.ctx, doc); err != nil {
					t.Fatal(err)
				}
				want = append(want, what)
				if i == 15 || i == 30 {
					v := strings.Repeat(fill[0], tenMiB)
					fill = fill[1:]
					if _, err := coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}},
						bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: v}}}}); err != nil {
						t.Fatal(err)
					}
					want = append(want, "update "+v[:1])
				}
			}
			var got []string
			for range want {
				ev, err := s.Next(f.ctx)
				var de *stream.DecodeError
				switch {
				case errors.As(err, &de):
					got = append(got, fmt.Sprint("DecodeError ", de.Raw.Lookup("documentKey", "_id").Int32()))
				case err != nil:
					t.Fatalf("Next after %v: %v", got, err)
				case ev.OperationType == stream.OpUpdate:
					v := ev.UpdateDescription.UpdatedFields.Lookup("value").StringValue()
					if len(v) != tenMiB || ev.FullDocumentBeforeChange == nil || ev.SplitEvent != nil {
						t.Errorf("update event not joined whole: value of %d bytes", len(v))
					}
					got = append(got, "update "+v[:min(1, len(v))])
				default:
					got = append(got, fmt.Sprint("insert ", ev.FullDocument.ID))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("events\n%v\nwant\n%v", got, want)
			}
		})
	}
}
