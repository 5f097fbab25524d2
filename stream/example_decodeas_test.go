package stream_test

import (
	"context"
	"fmt"
	"log"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Customer is the document type of the customers collection in
// ExampleDecodeAs.
type Customer struct {
	ID   int    `bson:"_id"`
	Name string `bson:"name"`
}

// One stream over a database, each collection's documents decoded into
// their own type with the client's registry.
func ExampleDecodeAs() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	shop := client.Database("shop")

	s, err := stream.Watch[stream.Event[bson.Raw]](ctx, shop, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	shop.Collection("orders").InsertOne(ctx, Order{ID: 1, Item: "tea", Qty: 2})
	shop.Collection("customers").InsertOne(ctx, Customer{ID: 7, Name: "Ada"})

	n := 0
	for ev, err := range s.All(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.NS.Coll {
		case "orders":
			order, err := stream.DecodeAs[Order](s, ev)
			if err != nil {
				log.Fatal(err) // a *stream.DecodeError naming the event
			}
			fmt.Println("order:", order.FullDocument.Item, order.FullDocument.Qty)
		case "customers":
			customer, err := stream.DecodeAs[Customer](s, ev)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("customer:", customer.FullDocument.Name)
		}
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// order: tea 2
	// customer: Ada
}
