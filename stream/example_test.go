package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Order is the document type of the examples and tests.
type Order struct {
	ID   int    `bson:"_id"`
	Item string `bson:"item"`
	Qty  int    `bson:"qty"`
}

// connectExample starts a mongotest server and connects to it; a real
// program connects to its deployment instead.
func connectExample() (*mongotest.Server, *mongo.Client) {
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		log.Fatal(err)
	}
	return srv, client
}

// The README's loop: range over the events of a collection.
func ExampleStream_All() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")

	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	orders.InsertOne(ctx, Order{ID: 1, Item: "tea", Qty: 2})
	orders.InsertOne(ctx, Order{ID: 2, Item: "cake", Qty: 1})

	n := 0
	for ev, err := range s.All(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.OperationType, ev.NS, ev.FullDocument.Item, ev.FullDocument.Qty)
		if n++; n == 2 {
			break // leaving the loop closes the stream
		}
	}
	fmt.Println("alive:", s.Alive())
	// Output:
	// insert shop.orders tea 2
	// insert shop.orders cake 1
	// alive: false
}

// The pull API: Next, TryNext, ResumeToken and Close, and resuming a new
// stream where the last one stopped.
func ExampleStream_Next() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")

	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	orders.InsertOne(ctx, Order{ID: 1, Item: "tea", Qty: 2})
	orders.InsertOne(ctx, Order{ID: 2, Item: "cake", Qty: 1})

	ev, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next:", ev.FullDocument.Item)
	token := s.ResumeToken()
	s.Close(ctx)

	// A new stream goes on after the last event returned.
	s, err = stream.Watch[stream.Event[Order]](ctx, orders, nil, nil,
		options.ChangeStream().SetResumeAfter(token.Raw()))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	if ev, ok, err := s.TryNext(ctx); err == nil && ok {
		fmt.Println("resumed:", ev.FullDocument.Item)
	}
	// Output:
	// next: tea
	// resumed: cake
}

// Batches for a consumer that writes in bulk: each batch is committed once
// its loop body returned, so a batch the body did not finish comes again,
// whole, after a restart.
func ExampleStream_Batches() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")
	opts := &stream.Options{Name: "orders-to-search", Store: &stream.MemoryStore{}}

	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	for i, item := range []string{"tea", "cake", "jam", "milk", "bread"} {
		orders.InsertOne(ctx, Order{ID: i + 1, Item: item, Qty: 1})
	}
	items := func(batch []stream.Event[Order]) []string {
		var out []string
		for _, ev := range batch {
			out = append(out, ev.FullDocument.Item)
		}
		return out
	}
	for batch, err := range s.Batches(ctx, 2, 100*time.Millisecond) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("batch:", items(batch))
		if len(batch) < 2 {
			break // as if the bulk write failed: this batch is not committed
		}
	}

	// A new stream with the same store goes on after the last batch
	// committed.
	s, err = stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	for batch, err := range s.Batches(ctx, 2, 100*time.Millisecond) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("again:", items(batch))
		break
	}
	// Output:
	// batch: [tea cake]
	// batch: [jam milk]
	// batch: [bread]
	// again: [bread]
}

// Explicit commit: with Options.ManualCommit, Next commits nothing; Commit
// moves the checkpoint through the events the consumer is done with.
func ExampleStream_Commit() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")
	opts := &stream.Options{Name: "orders-to-cache", Store: &stream.MemoryStore{}, ManualCommit: true}

	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	for i, item := range []string{"tea", "cake", "jam"} {
		orders.InsertOne(ctx, Order{ID: i + 1, Item: item, Qty: 1})
	}
	var evs []stream.Event[Order]
	for range 3 {
		ev, err := s.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		evs = append(evs, ev)
	}
	fmt.Println("in flight:", s.Stats().InFlight)
	// Done with tea and cake; jam is still being handled.
	if err := s.Commit(evs[1].ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("in flight:", s.Stats().InFlight)
	err = s.Commit(evs[0].ID)
	fmt.Println("commit tea again:", errors.Is(err, stream.ErrAlreadyCommitted))
	s.Close(ctx) // saves what was committed, nothing more

	s, err = stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	ev, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after a restart:", ev.FullDocument.Item)
	// Output:
	// in flight: 3
	// in flight: 1
	// commit tea again: true
	// after a restart: jam
}
