package stream_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Product is the document type of the cache-invalidation example.
type Product struct {
	ID    string  `bson:"_id"`
	Price float64 `bson:"price"`
}

// priceCache stands for a cache of product prices in front of the
// database, such as a Redis or memcached server.
type priceCache struct {
	mu     sync.Mutex
	prices map[string]float64
}

// Evict drops a product from the cache.
func (c *priceCache) Evict(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.prices, id)
	return nil
}

// Clear drops every product from the cache.
func (c *priceCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.prices)
}

// Cached returns the ids of the cached products, sorted.
func (c *priceCache) Cached() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.prices))
	for id := range c.prices {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Cache invalidation with Process: every change to a product evicts its
// cached price. The changes of one product are handled in order, those of
// different products in parallel; the checkpoint only moves past an event
// once it and every event before it were handled.
func ExampleProcess() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	products := client.Database("shop").Collection("products")
	products.InsertMany(ctx, []any{Product{"tea", 3.5}, Product{"cake", 2}, Product{"jam", 4}})
	cache := &priceCache{prices: map[string]float64{"tea": 3.5, "cake": 2, "jam": 4}}

	s, err := stream.Watch[stream.Event[Product]](ctx, products, nil,
		&stream.Options{Store: &stream.MemoryStore{}, Name: "price-cache"})
	if err != nil {
		log.Fatal(err)
	}
	products.UpdateOne(ctx, bson.D{{Key: "_id", Value: "tea"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "price", Value: 3.9}}}})
	products.DeleteOne(ctx, bson.D{{Key: "_id", Value: "jam"}})

	// A real consumer runs until shutdown (signal.NotifyContext); this one
	// stops after two events.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var handled atomic.Int32
	err = stream.Process(ctx, s, func(ctx context.Context, ev stream.Event[Product]) error {
		id := ev.DocumentKey.Lookup("_id").StringValue()
		if err := cache.Evict(ctx, id); err != nil {
			return err // retried with backoff, then handed to DeadLetter
		}
		if handled.Add(1) == 2 {
			stop()
		}
		return nil
	}, &stream.ProcessOptions[stream.Event[Product]]{
		Workers: 32,
		DeadLetter: func(ctx context.Context, failed *stream.HandlerError) error {
			// The cache could not be told: forget all of it rather than
			// serve a stale price.
			log.Printf("clearing the cache: %v", failed)
			cache.Clear()
			return nil
		},
	})
	fmt.Println("Process:", err)
	fmt.Println("cached:", cache.Cached())
	// Output:
	// Process: context canceled
	// cached: [cake]
}
