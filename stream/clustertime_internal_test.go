package stream

import (
	"context"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// serverClock reads the $clusterTime of the driver's latest reply out of
// the driver's stream. If a driver upgrade moves it, Stats falls back to the
// tokens' cluster times, but this test fails, so the loss is noticed.
func TestServerClockReadsTheLatestReply(t *testing.T) {
	srv := mongotest.New(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("db").Collection("c")
	s, err := Watch[bson.Raw](ctx, coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := coll.InsertOne(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ct, ci, ok := ev.Lookup("clusterTime").TimestampOK()
	if !ok {
		t.Fatalf("event without clusterTime: %v", ev)
	}
	var c serverClock
	if got := c.read(s.cs); got.Before(bson.Timestamp{T: ct, I: ci}) || got.IsZero() {
		t.Fatalf("serverClock read %v, want the reply's cluster time, at least the event's %v", got, ct)
	}
}
