package stream_test

import (
	"context"
	"fmt"
	"log"

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
