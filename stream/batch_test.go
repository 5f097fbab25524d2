package stream_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// orderIDs returns the order ids of a batch of inserts.
func orderIDs(t *testing.T, batch []stream.Event[Order]) []int {
	t.Helper()
	ids := make([]int, len(batch))
	for i, ev := range batch {
		if ev.FullDocument == nil {
			t.Fatalf("event %d of the batch is a %s without a document", i, ev.OperationType)
		}
		ids[i] = ev.FullDocument.ID
	}
	return ids
}

func ordersRange(from, to int) []Order {
	var out []Order
	for i := from; i <= to; i++ {
		out = append(out, Order{ID: i})
	}
	return out
}

// A batch fills up to max at once when the events are there, and is
// yielded with fewer once wait has passed.
func TestBatchesGathersUpToMax(t *testing.T) {
	before := streamGoroutines()
	f := newFixture(t)
	s := watchWith(t, f, nil)
	f.insert(t, ordersRange(1, 10)...)
	var got [][]int
	for batch, err := range s.Batches(f.ctx, 4, 50*time.Millisecond) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, orderIDs(t, batch))
		if len(got) == 3 {
			break
		}
	}
	want := [][]int{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	if s.Alive() {
		t.Error("the stream is alive after the loop ended")
	}
	// The third batch's wait left a fetch waiting on the server; the loop's
	// end closed the stream, and stopped it.
	if n := leftGoroutines(before); n != 0 {
		t.Errorf("%d stream goroutines after the loop ended", n)
	}
}

// With wait 0, a batch is what the stream already received: it never
// waits for more after the first event.
func TestBatchesWaitZero(t *testing.T) {
	f := newFixture(t)
	s := watchWith(t, f, nil)
	f.insert(t, Order{ID: 1})
	for batch, err := range s.Batches(f.ctx, 100, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ids := orderIDs(t, batch); !slices.Equal(ids, []int{1}) {
			t.Fatalf("batch %v, want [1]", ids)
		}
		break
	}
}

// A batch is committed only after its loop body returned and the loop asks
// for more: a loop that ends in a batch's body, however it ends, gets the
// whole batch again after a restart.
func TestBatchesWholeBatchComesAgain(t *testing.T) {
	ends := []struct {
		name string
		body func(s *stream.Stream[stream.Event[Order]]) bool // false: leave the loop
	}{
		{"break", func(*stream.Stream[stream.Event[Order]]) bool { return false }},
		{"panic", func(*stream.Stream[stream.Event[Order]]) bool { panic("handler failed") }},
		{"Close from another goroutine", func(s *stream.Stream[stream.Event[Order]]) bool {
			done := make(chan error)
			go func() { done <- s.Close(context.Background()) }()
			if err := <-done; err != nil {
				panic(err)
			}
			return true
		}},
	}
	for _, end := range ends {
		t.Run(end.name, func(t *testing.T) {
			f := newFixture(t)
			store := newProbeStore(&stream.MemoryStore{})
			opts := &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1, CheckpointInterval: hour}
			s := watchWith(t, f, opts)
			f.insert(t, ordersRange(1, 6)...)
			var after1 stream.Token // the position after batch 1
			var batches int
			func() {
				defer func() {
					if r := recover(); r != nil && r != "handler failed" {
						panic(r)
					}
				}()
				for batch, err := range s.Batches(f.ctx, 3, time.Minute) {
					if err != nil {
						t.Fatal(err)
					}
					batches++
					switch batches {
					case 1:
						after1 = s.ResumeToken()
						if got := store.lastSaved(); !got.IsZero() && got.Equal(after1) {
							t.Fatal("batch 1 was saved before its body returned")
						}
						continue
					case 2:
						// Batch 1's body returned and the loop asked for more.
						if got := store.lastSaved(); !got.Equal(after1) {
							t.Fatalf("in batch 2's body, saved %v; want the position after batch 1 %v", got, after1)
						}
						if ids := orderIDs(t, batch); !slices.Equal(ids, []int{4, 5, 6}) {
							t.Fatalf("batch 2 = %v", ids)
						}
						if !end.body(s) {
							return
						}
					default:
						t.Fatalf("batch %d after the stream was closed", batches)
					}
				}
			}()
			if got := store.lastSaved(); !got.Equal(after1) {
				t.Fatalf("after the loop: saved %v, want the position after batch 1 %v", got, after1)
			}
			s2 := watchWith(t, f, opts)
			for batch, err := range s2.Batches(f.ctx, 3, time.Minute) {
				if err != nil {
					t.Fatal(err)
				}
				if ids := orderIDs(t, batch); !slices.Equal(ids, []int{4, 5, 6}) {
					t.Fatalf("after a restart: batch %v, want the whole batch [4 5 6] again", ids)
				}
				break
			}
		})
	}
}

// Between batches, while the stream waits for the next event, the idle
// postBatchResumeToken is committed and saved.
func TestBatchesIdleCheckpoints(t *testing.T) {
	f := newFixture(t)
	store := newProbeStore(&stream.MemoryStore{})
	s := watchWith(t, f, &stream.Options{Store: store, Name: "orders", CheckpointEvery: 1, CheckpointInterval: time.Nanosecond},
		options.ChangeStream().SetMaxAwaitTime(10*time.Millisecond))
	f.insert(t, Order{ID: 1})
	closed := make(chan error, 1)
	for batch, err := range s.Batches(f.ctx, 10, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ids := orderIDs(t, batch); !slices.Equal(ids, []int{1}) {
			t.Fatalf("batch %v, want [1]", ids)
		}
		after, err := s.ResumeToken().ClusterTime()
		if err != nil {
			t.Skipf("the deployment's tokens carry no cluster time: %v", err)
		}
		// A write elsewhere moves the server's postBatchResumeToken; once
		// the body returned, the loop waits idle and saves it.
		if _, err := f.db.Collection("elsewhere").InsertOne(f.ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
		go func() {
			store.waitFor(t, f.ctx, func(cp stream.Checkpoint) bool {
				ct, err := cp.Token.ClusterTime()
				return err == nil && ct.After(after)
			})
			closed <- s.Close(f.ctx)
		}()
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A *DecodeError ends the batch before it; iteration goes on after it.
func TestBatchesDecodeError(t *testing.T) {
	f := newFixture(t)
	s, err := stream.Watch[stream.Event[BadQty]](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []bson.D{
		{{Key: "_id", Value: 1}, {Key: "qty", Value: 1}},
		{{Key: "_id", Value: 2}, {Key: "qty", Value: "many"}},
		{{Key: "_id", Value: 3}, {Key: "qty", Value: 3}},
	} {
		if _, err := f.coll.InsertOne(f.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for batch, err := range s.Batches(f.ctx, 10, 50*time.Millisecond) {
		var de *stream.DecodeError
		switch {
		case errors.As(err, &de):
			got = append(got, "DecodeError")
			continue
		case err != nil:
			t.Fatal(err)
		}
		var ids []string
		for _, ev := range batch {
			ids = append(ids, string(rune('0'+ev.FullDocument.ID)))
		}
		got = append(got, strings.Join(ids, ","))
		if len(got) == 3 {
			break
		}
	}
	if want := []string{"1", "DecodeError", "3"}; !slices.Equal(got, want) {
		t.Fatalf("yielded %q, want %q", got, want)
	}
}

// Bad arguments are an error, and leave the stream unused.
func TestBatchesBadArguments(t *testing.T) {
	f := newFixture(t)
	s := watchWith(t, f, nil)
	bad := []struct {
		max  int
		wait time.Duration
		want string
	}{
		{0, time.Second, "max is 0"},
		{-1, time.Second, "max is -1"},
		{10, -time.Second, "wait is negative"},
	}
	for _, b := range bad {
		n := 0
		for batch, err := range s.Batches(f.ctx, b.max, b.wait) {
			n++
			if batch != nil || err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("Batches(%d, %v) yielded %v, %v; want an error saying %q", b.max, b.wait, batch, err, b.want)
			}
		}
		if n != 1 {
			t.Errorf("Batches(%d, %v) yielded %d times, want once", b.max, b.wait, n)
		}
	}
	f.insert(t, Order{ID: 1})
	for batch, err := range s.Batches(f.ctx, 1, 0) {
		if err != nil {
			t.Fatalf("after bad arguments: %v", err)
		}
		if ids := orderIDs(t, batch); !slices.Equal(ids, []int{1}) {
			t.Fatalf("batch %v", ids)
		}
		break
	}
	n := 0
	for _, err := range s.Batches(f.ctx, 1, 0) {
		n++
		if !errors.Is(err, stream.ErrSingleUse) {
			t.Errorf("a second range yielded %v, want ErrSingleUse", err)
		}
	}
	if n != 1 {
		t.Errorf("a second range yielded %d times, want once", n)
	}
}
