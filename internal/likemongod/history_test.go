package likemongod_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A resume token from before the server's history (here: a token of
// another server, which started later) gets ChangeStreamHistoryLost
// (286), as on a replica set whose oplog no longer holds the token.
func TestResumeBeforeHistory(t *testing.T) {
	f := newFixture(t)
	if f.srv == nil {
		t.Skip("needs mongotest (a second server started after the token); MONGODB_URI is set")
	}
	cs, err := f.coll.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if !cs.Next(f.ctx) {
		t.Fatal(cs.Err())
	}
	token := cs.ResumeToken()
	_ = cs.Close(f.ctx)

	later := mongotest.New(t, nil)
	g := &fixture{uri: later.URI(), ctx: f.ctx}
	c := g.connect(t)
	coll := c.Database(f.db.Name()).Collection(f.coll.Name())
	if _, err := coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	rs, err := coll.Watch(f.ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(token))
	if err == nil {
		defer rs.Close(f.ctx)
		ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
		defer cancel()
		if rs.Next(ctx) {
			t.Fatalf("resumed on a later server from an older token and got %s", rs.Current)
		}
		err = rs.Err()
	}
	// Cluster times count seconds: when both servers started within one
	// second the token is not older than the later server's history but
	// names no event of it, which a real server refuses with
	// ChangeStreamFatalError (280).
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorCode(280) {
		t.Logf("both servers started within one second: %v", err)
		return
	}
	wantCode(t, err, 286, "resume from a token older than the server's history")
}

// An idle server's cluster time advances, as a replica set's periodic
// no-op writer makes it: an idle change stream's postBatchResumeToken
// moves on without any write.
func TestIdleClusterTimeAdvances(t *testing.T) {
	if os.Getenv("MONGODB_URI") != "" {
		t.Skip("needs mongotest (Options.IdleWriteInterval; a replica set writes its no-op every 10 s); MONGODB_URI is set")
	}
	srv := mongotest.New(t, &mongotest.Options{IdleWriteInterval: 20 * time.Millisecond})
	f := &fixture{srv: srv, uri: srv.URI()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.ctx = ctx
	coll := f.connect(t).Database("idle").Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetMaxAwaitTime(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	first := cs.ResumeToken()
	for string(cs.ResumeToken()) == string(first) {
		// Each TryNext is a getMore the server holds for up to 100 ms.
		if cs.TryNext(ctx) {
			t.Fatalf("event on an idle server: %s", cs.Current)
		}
		if err := cs.Err(); err != nil {
			t.Fatalf("idle stream: %v (the resume token never advanced)", err)
		}
	}
}
