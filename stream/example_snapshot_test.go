package stream_test

import (
	"context"
	"fmt"
	"log"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Starting from existing data: the orders that exist come first, as
// snapshot events, then the changes. The consumer keeps a copy of the
// collection, applying every event idempotently.
func ExampleOptions_snapshot() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")
	orders.InsertMany(ctx, []any{Order{ID: 1, Item: "tea", Qty: 2}, Order{ID: 2, Item: "cake", Qty: 1}})

	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, &stream.Options{
		Name: "orders-copy", Store: &stream.MemoryStore{}, // a FileStore or CollectionStore in a real program
		NoCheckpoint: stream.StartWithSnapshot,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	mirror := map[int]Order{}
	for n := 0; n < 4; n++ {
		ev, err := s.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var id int
		bson.Raw(ev.DocumentKey).Lookup("_id").Unmarshal(&id)
		switch ev.OperationType {
		case stream.OpSnapshot, stream.OpInsert, stream.OpReplace:
			mirror[id] = *ev.FullDocument // an upsert: the same event twice is harmless
		case stream.OpDelete:
			delete(mirror, id) // deleting a missing key is harmless too
		}
		fmt.Println(ev.OperationType, id, s.Stats().Snapshot.Running)
		if n == 1 { // the snapshot is read: change the collection
			orders.InsertOne(ctx, Order{ID: 3, Item: "jam", Qty: 5})
			orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: 1}})
		}
	}
	fmt.Println(len(mirror), mirror[2].Item, mirror[3].Item)
	// Output:
	// snapshot 1 true
	// snapshot 2 true
	// insert 3 false
	// delete 1 false
	// 2 cake jam
}
