package likemongod_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// fixture is a deployment to test against: a mongotest server, or the
// deployment MONGODB_URI names. Each fixture uses a database of its own.
type fixture struct {
	srv    *mongotest.Server // nil against a real deployment
	uri    string
	client *mongo.Client
	db     *mongo.Database
	coll   *mongo.Collection
	ctx    context.Context
}

// newFixture connects to mongotest, or to MONGODB_URI when it is set.
// extra client options apply after the defaults.
func newFixture(t *testing.T, extra ...*options.ClientOptions) *fixture {
	t.Helper()
	f := &fixture{uri: os.Getenv("MONGODB_URI")}
	if f.uri == "" {
		f.srv = mongotest.New(t, nil)
		f.uri = f.srv.URI()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f.ctx = ctx
	f.client = f.connect(t, extra...)
	var b [6]byte
	_, _ = rand.Read(b[:])
	f.db = f.client.Database("likemongod_" + hex.EncodeToString(b[:]))
	f.coll = f.db.Collection("orders")
	t.Cleanup(func() {
		if f.srv == nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = f.db.Drop(cctx)
		}
	})
	return f
}

// connect returns another client of the deployment, disconnected when
// the test ends.
func (f *fixture) connect(t *testing.T, extra ...*options.ClientOptions) *mongo.Client {
	t.Helper()
	opts := append([]*options.ClientOptions{
		options.Client().ApplyURI(f.uri).SetServerSelectionTimeout(5 * time.Second),
	}, extra...)
	c, err := mongo.Connect(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(cctx)
	})
	return c
}

// admin runs a command on the admin database.
func (f *fixture) admin(cmd bson.D) (bson.Raw, error) {
	return f.client.Database("admin").RunCommand(f.ctx, cmd).Raw()
}

// failPoint configures a failpoint through configureFailPoint and turns
// it off when the test ends.
func (f *fixture) failPoint(t *testing.T, name string, mode any, data bson.D) {
	t.Helper()
	cmd := bson.D{{Key: "configureFailPoint", Value: name}, {Key: "mode", Value: mode}}
	if data != nil {
		cmd = append(cmd, bson.E{Key: "data", Value: data})
	}
	if _, err := f.admin(cmd); err != nil {
		t.Fatalf("configureFailPoint %s: %v", name, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.client.Database("admin").RunCommand(cctx, bson.D{{Key: "configureFailPoint", Value: name}, {Key: "mode", Value: "off"}}).Err()
	})
}

// wantCode fails unless err is a server error with the code.
func wantCode(t *testing.T, err error, code int, what string) {
	t.Helper()
	var se mongo.ServerError
	if !errors.As(err, &se) || !se.HasErrorCode(code) {
		t.Fatalf("%s: got %v, want server error code %d", what, err, code)
	}
}
