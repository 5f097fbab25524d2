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

// A writer that goes through PoolWatch.Retry gets every write in after
// faults that clear the driver's pool, while a change stream is also using
// the client (its failures clear the pool too).
func TestPoolWatchRetryThroughFaults(t *testing.T) {
	faults := []struct {
		name   string
		inject func(*mongotest.Server)
	}{
		{"DropConnections", (*mongotest.Server).DropConnections},
		{"Restart", (*mongotest.Server).Restart},
	}
	for _, ft := range faults {
		t.Run(ft.name, func(t *testing.T) {
			srv := mongotest.New(t, nil)
			pw := mongotest.NewPoolWatch()
			client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetPoolMonitor(pw.Monitor()))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			coll := client.Database("shop").Collection("orders")
			cs, err := coll.Watch(ctx, mongo.Pipeline{})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			const rounds = 15
			for i := range rounds {
				ft.inject(srv)
				tries := 0
				err := pw.Retry(ctx, func() error {
					tries++
					_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}})
					if tries > 1 && mongo.IsDuplicateKeyError(err) {
						return nil // an earlier try landed
					}
					return err
				})
				if err != nil {
					t.Fatalf("round %d: %v (transient: %v)", i, err, mongotest.Transient(err))
				}
			}
			n, err := coll.CountDocuments(ctx, bson.D{})
			if err != nil || n != rounds {
				t.Fatalf("CountDocuments = %d, %v; want %d", n, err, rounds)
			}
		})
	}
}
