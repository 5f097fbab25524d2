package stream_test

import (
	"context"
	"fmt"
	"log"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// OutboxMessage is what the outbox example's transaction records beside
// the order, for a relay to publish.
type OutboxMessage struct {
	ID    string `bson:"_id"`
	Topic string `bson:"topic"`
	Order int    `bson:"order"`
}

// The transactional outbox: a transaction writes an order and an outbox
// message; a stream on the outbox delivers the message only once the
// transaction commits, with the transaction's number and session, and
// nothing of a transaction that aborts.
func Example_outbox() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	db := client.Database("shop")
	orders, outbox := db.Collection("orders"), db.Collection("outbox")
	for _, c := range []*mongo.Collection{orders, outbox} {
		if err := db.CreateCollection(ctx, c.Name()); err != nil {
			log.Fatal(err)
		}
	}

	s, err := stream.Watch[stream.Event[OutboxMessage]](ctx, outbox, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	place := func(order int, commit bool) {
		sess, err := client.StartSession()
		if err != nil {
			log.Fatal(err)
		}
		defer sess.EndSession(ctx)
		if err := sess.StartTransaction(); err != nil {
			log.Fatal(err)
		}
		tctx := mongo.NewSessionContext(ctx, sess)
		if _, err := orders.InsertOne(tctx, Order{ID: order, Item: "tea", Qty: 1}); err != nil {
			log.Fatal(err)
		}
		msg := OutboxMessage{ID: fmt.Sprint("order-placed-", order), Topic: "orders", Order: order}
		if _, err := outbox.InsertOne(tctx, msg); err != nil {
			log.Fatal(err)
		}
		// Nothing is delivered before the transaction ends.
		if ev, ok, err := s.TryNext(ctx); err != nil || ok {
			log.Fatalf("before commit: %v, %v", ev.FullDocument, err)
		}
		if commit {
			err = sess.CommitTransaction(ctx)
		} else {
			err = sess.AbortTransaction(ctx)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	place(1, false) // aborted: its message never appears
	place(2, true)

	ev, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.OperationType, ev.FullDocument.ID)
	fmt.Println("in a transaction:", ev.TxnNumber != nil && ev.LSID != nil)
	var orderDoc bson.M
	if err := orders.FindOne(ctx, bson.D{{Key: "_id", Value: ev.FullDocument.Order}}).Decode(&orderDoc); err != nil {
		log.Fatal(err)
	}
	fmt.Println("order committed with it:", orderDoc["_id"])
	// Output:
	// insert order-placed-2
	// in a transaction: true
	// order committed with it: 2
}
