package otelstream_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// fixture is a deployment to test against: a mongotest server, or the
// deployment MONGODB_URI names, with a collection of a database of its own.
type fixture struct {
	srv  *mongotest.Server // nil against a real deployment
	coll *mongo.Collection
	pool *mongotest.PoolWatch
	ctx  context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{pool: mongotest.NewPoolWatch()}
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		f.srv = mongotest.New(t, nil)
		uri = f.srv.URI()
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetPoolMonitor(f.pool.Monitor()).
		SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	f.ctx = ctx
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := client.Database("otelstream_" + hex.EncodeToString(b[:]))
	f.coll = db.Collection("orders")
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if f.srv == nil {
			_ = db.Drop(cctx)
		}
		_ = client.Disconnect(cctx)
		cancel()
	})
	return f
}

// needMongotest skips a test that needs a mongotest hook.
func (f *fixture) needMongotest(t *testing.T, what string) {
	t.Helper()
	if f.srv == nil {
		t.Skipf("needs mongotest (%s); MONGODB_URI is set", what)
	}
}

// insert writes orders with these ids, retrying after an injected fault.
func (f *fixture) insert(t *testing.T, ids ...int) {
	t.Helper()
	for _, id := range ids {
		tries := 0
		err := f.pool.Retry(f.ctx, func() error {
			tries++
			_, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: id}, {Key: "item", Value: "tea"}})
			if tries > 1 && mongo.IsDuplicateKeyError(err) {
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatalf("insert %d: %v", id, err)
		}
	}
}

// clusterTime returns the deployment's cluster time now, to start a
// stream before the writes that follow.
func (f *fixture) clusterTime(t *testing.T) bson.Timestamp {
	t.Helper()
	var reply struct {
		OperationTime bson.Timestamp `bson:"operationTime"`
	}
	if err := f.coll.Database().RunCommand(f.ctx, bson.D{{Key: "ping", Value: 1}}).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	return reply.OperationTime
}
