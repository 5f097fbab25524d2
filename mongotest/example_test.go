package mongotest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// collectOrders is the code under test: a consumer that reads n new
// orders from a change stream.
func collectOrders(ctx context.Context, cs *mongo.ChangeStream, n int) ([]string, error) {
	var items []string
	for len(items) < n && cs.Next(ctx) {
		var ev struct {
			FullDocument struct {
				Item string `bson:"item"`
			} `bson:"fullDocument"`
		}
		if err := cs.Decode(&ev); err != nil {
			return items, err
		}
		items = append(items, ev.FullDocument.Item)
	}
	return items, cs.Err()
}

// A consumer keeps going when a getMore fails with an error the driver
// resumes from: the server fails the first getMore with HostUnreachable
// after checking out the cursor, labels it ResumableChangeStreamError as a
// real server does, and the driver reopens the stream where it was.
func Example_failPoint() {
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(ctx)
	orders := client.Database("shop").Collection("orders")

	cs, err := orders.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close(ctx)

	srv.FailCommand(mongotest.FailPoint{
		AfterCursorCheckout: true,
		ErrorCode:           6, // HostUnreachable
		Times:               1,
	})
	for _, item := range []string{"tea", "cake", "jam"} {
		if _, err := orders.InsertOne(ctx, bson.D{{Key: "item", Value: item}}); err != nil {
			log.Fatal(err)
		}
	}

	items, err := collectOrders(ctx, cs, 3)
	fmt.Println(items, err)
	// Output: [tea cake jam] <nil>
}
