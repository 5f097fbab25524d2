package mongotest

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A cursor left unused for longer than CursorTimeout is killed, as a real
// server kills it after cursorTimeoutMillis; a driver change stream that
// comes back to it resumes from CursorNotFound and loses nothing. The
// server's clock is replaced so that no test waits for minutes.
func TestCursorTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		idle    time.Duration
		killed  bool
	}{
		{"idle for less than the timeout", time.Minute, 59 * time.Second, false},
		{"idle for longer than the timeout", time.Minute, 61 * time.Second, true},
		{"the default timeout is ten minutes", 0, 11 * time.Minute, true},
		{"a negative timeout never expires", -1, 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := NewServer(&Options{CursorTimeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var mu sync.Mutex
			now := time.Now()
			srv.engine.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(ctx)
			coll := client.Database("shop").Collection("orders")
			cs, err := coll.Watch(ctx, mongo.Pipeline{})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
				t.Fatal(err)
			}
			if !cs.Next(ctx) {
				t.Fatal(cs.Err())
			}
			if n := srv.OpenCursors(); n != 1 {
				t.Fatalf("%d cursors open, want 1", n)
			}
			id := cs.ID()

			mu.Lock()
			now = now.Add(tt.idle)
			mu.Unlock()
			want := 1
			if tt.killed {
				want = 0
			}
			if n := srv.OpenCursors(); n != want {
				t.Fatalf("after %v idle: %d cursors open, want %d", tt.idle, n, want)
			}

			// The stream goes on either way; after a timeout the driver
			// resumes on a new cursor.
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
				t.Fatal(err)
			}
			if !cs.Next(ctx) {
				t.Fatal(cs.Err())
			}
			if got := cs.Current.Lookup("documentKey", "_id").AsInt64(); got != 2 {
				t.Errorf("event for _id %d, want 2", got)
			}
			if resumed := cs.ID() != id; resumed != tt.killed {
				t.Errorf("cursor %d -> %d: resumed %v, want %v", id, cs.ID(), resumed, tt.killed)
			}
		})
	}
}
