package stream_test

// Benchmarks of Group (docs/performance.md, "Groups"). One op is one
// event. Run them alone with:
//
//	go test -run '^$' -bench 'Group' -benchmem -benchtime 2000x -count 1 ./stream/ | go run ./internal/benchtable
//
// Each member is a service that handles one event at a time, as one that
// holds one connection to what it updates: its handler takes the member's
// lock and sleeps 1 ms (an I/O call). A group of 16 partitions spreads the
// events over its members, so 4 members should handle about 4 times the
// events of 1. All members share one process and one mongotest server.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func BenchmarkGroup(b *testing.B) {
	srv := mongotest.New(b, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	db := client.Database("bench")
	store, err := stream.NewCollectionStore(db.Collection("checkpoints"), nil)
	if err != nil {
		b.Fatal(err)
	}
	runs := 0
	for _, members := range []int{1, 4} {
		b.Run(fmt.Sprintf("handler=sleep1ms/form=members-%d", members), func(b *testing.B) {
			runs++
			benchGroup(b, db.Collection(fmt.Sprintf("orders%d", runs)), store, fmt.Sprintf("bench%d", runs), members)
		})
	}
}

// benchGroup starts members members of a new group, waits until they hold
// every partition, inserts b.N documents, and times how long the members
// take to handle their inserts.
func benchGroup(b *testing.B, coll *mongo.Collection, store *stream.CollectionStore, name string, members int) {
	const parts = 16
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gate := make(chan struct{})
	var handled atomic.Int64
	ready := make(chan struct{}, 1)
	done := make(chan struct{})
	errs := make(chan error, members)
	groups := make([]*stream.Group[stream.Event[benchOrder]], members)
	for m := range members {
		g, err := stream.NewGroup[stream.Event[benchOrder]](coll, nil,
			&stream.Options{Store: store, Name: name, LeaseTTL: 2 * time.Second, Instance: fmt.Sprintf("m%d", m)},
			&stream.GroupOptions{Partitions: parts})
		if err != nil {
			b.Fatal(err)
		}
		groups[m] = g
		var worker sync.Mutex // the member handles one event at a time
		go func() {
			errs <- g.Run(ctx, func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[benchOrder]]) error {
				select {
				case ready <- struct{}{}:
				default:
				}
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
				for _, err := range s.All(ctx) {
					if err != nil {
						return err
					}
					worker.Lock()
					time.Sleep(time.Millisecond)
					worker.Unlock()
					if handled.Add(1) == int64(b.N) {
						close(done)
					}
				}
				return nil
			})
		}()
	}
	// Wait for the deal to settle: each member holds its share, 16/members
	// partitions, and just what it was dealt. The first member takes all
	// 16 and hands some over as the others join; the last change is a
	// partition taken, which starts the function, which wakes this loop.
	settled := func() bool {
		for _, g := range groups {
			st := g.Stats()
			if len(st.Owned) != parts/members || !slices.Equal(st.Owned, st.Assigned) {
				return false
			}
		}
		return true
	}
	for !settled() {
		select {
		case <-ready:
		case err := <-errs:
			b.Fatal(err)
		}
	}
	docs := make([]any, b.N)
	for i := range docs {
		docs[i] = benchOrder{ID: bson.NewObjectID(), Customer: "c", Status: "new"}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	close(gate)
	select {
	case <-done:
	case err := <-errs:
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	cancel()
	for range members {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
	}
}
