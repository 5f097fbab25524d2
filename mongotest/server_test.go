package mongotest_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func TestInsertAndWatch(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("shop").Collection("orders")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "item", Value: "tea"}}); err != nil {
		t.Fatal(err)
	}
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	var ev struct {
		OperationType string `bson:"operationType"`
		FullDocument  bson.M `bson:"fullDocument"`
		NS            struct{ DB, Coll string }
	}
	if err := cs.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.OperationType != "insert" || ev.FullDocument["item"] != "tea" || ev.NS.Coll != "orders" {
		t.Fatalf("event = %+v", ev)
	}
}
