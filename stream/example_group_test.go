package stream_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"github.com/go-changestream/changestream/stream"
)

// A partitioned group: run this program as several instances (replicas of
// one service) and each takes a share of the 16 partitions of the
// products stream, handling its partitions with Process. The changes of
// one product stay in one partition, so they are handled in order by one
// instance at a time; when an instance stops or dies, the others take its
// partitions over. This one runs alone and stops after three changes.
func ExampleGroup() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	products := client.Database("shop").Collection("products")
	store, err := stream.NewCollectionStore(client.Database("shop").Collection("checkpoints"), nil)
	if err != nil {
		log.Fatal(err)
	}
	g, err := stream.NewGroup[stream.Event[Product]](products, nil,
		&stream.Options{Store: store, Name: "price-cache", LeaseTTL: 10 * time.Second},
		&stream.GroupOptions{Partitions: 16})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	var evicted []string
	opened := make(chan struct{}, 16)
	go func() {
		for range 16 { // this instance holds every partition: it runs alone
			<-opened
		}
		products.InsertMany(ctx, []any{Product{"tea", 3.5}, Product{"cake", 2}, Product{"jam", 4}})
	}()
	err = g.Run(ctx, func(ctx context.Context, p stream.Partition, s *stream.Stream[stream.Event[Product]]) error {
		opened <- struct{}{}
		return stream.Process(ctx, s, func(ctx context.Context, ev stream.Event[Product]) error {
			id := ev.DocumentKey.Lookup("_id").StringValue()
			mu.Lock()
			defer mu.Unlock()
			evicted = append(evicted, id)
			if len(evicted) == 3 {
				stop()
			}
			return nil
		}, nil)
	})
	fmt.Println("Run:", err)
	slices.Sort(evicted)
	fmt.Println("evicted:", evicted)
	// Output:
	// Run: context canceled
	// evicted: [cake jam tea]
}
