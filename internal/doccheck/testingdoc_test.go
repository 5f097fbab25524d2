package doccheck

// The tests of docs/testing.md: the document shows this code.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Order is the document of these tests; its _id is the server's ObjectID.
type Order struct {
	Item string `bson:"item"`
	Qty  int    `bson:"qty"`
}

// collect is the code under test: it reads n orders from a stream.
func collect(ctx context.Context, s *stream.Stream[stream.Event[Order]], n int) ([]string, error) {
	var items []string
	for ev, err := range s.All(ctx) {
		if err != nil {
			return items, err
		}
		items = append(items, ev.FullDocument.Item)
		if len(items) == n {
			break
		}
	}
	return items, nil
}

// connect starts a server for the test and connects to it.
func connect(t *testing.T) (*mongotest.Server, *mongo.Collection, context.Context) {
	t.Helper()
	srv := mongotest.New(t, nil)     // closed when the test ends
	pool := mongotest.NewPoolWatch() // lets insert retry after a fault
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetPoolMonitor(pool.Monitor()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(func() {
		client.Disconnect(context.Background())
		cancel()
	})
	orders := client.Database("shop").Collection("orders")
	poolsMu.Lock()
	pools[orders] = pool
	poolsMu.Unlock()
	return srv, orders, ctx
}

// pools holds the pool watch of each test's client, for insert.
var (
	poolsMu sync.Mutex
	pools   = map[*mongo.Collection]*mongotest.PoolWatch{}
)

func poolOf(orders *mongo.Collection) *mongotest.PoolWatch {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	return pools[orders]
}

func insert(t *testing.T, ctx context.Context, orders *mongo.Collection, items ...string) {
	t.Helper()
	for i, item := range items {
		doc := bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "item", Value: item}, {Key: "qty", Value: i + 1}}
		tries := 0
		err := poolOf(orders).Retry(ctx, func() error {
			tries++
			_, err := orders.InsertOne(ctx, doc)
			if tries > 1 && mongo.IsDuplicateKeyError(err) {
				return nil // the earlier try landed
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollect(t *testing.T) {
	_, orders, ctx := connect(t)
	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, ctx, orders, "tea", "cake")

	items, err := collect(ctx, s, 2)
	if err != nil || len(items) != 2 || items[0] != "tea" || items[1] != "cake" {
		t.Fatalf("collect = %v, %v; want [tea cake]", items, err)
	}
	if s.Alive() {
		t.Error("the stream is alive after the loop ended")
	}
}

// Faults on getMore: the consumer sees every event, in order, once.
func TestCollectThroughFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*mongotest.Server)
	}{
		{"resumable error after cursor checkout", func(srv *mongotest.Server) {
			srv.FailCommand(mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 6, Times: 1}) // HostUnreachable
		}},
		{"connection closed on getMore", func(srv *mongotest.Server) {
			srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, CloseConnection: true, Times: 1})
		}},
		{"all connections dropped", (*mongotest.Server).DropConnections},
		{"server restart", (*mongotest.Server).Restart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, orders, ctx := connect(t)
			s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			insert(t, ctx, orders, "tea")
			if items, err := collectOne(ctx, s); err != nil || items != "tea" {
				t.Fatalf("before the fault: %q, %v", items, err)
			}

			tt.fault(srv)
			insert(t, ctx, orders, "cake", "jam")

			items, err := collect(ctx, s, 2)
			if err != nil || len(items) != 2 || items[0] != "cake" || items[1] != "jam" {
				t.Fatalf("after the fault: %v, %v; want [cake jam]", items, err)
			}
		})
	}
}

func collectOne(ctx context.Context, s *stream.Stream[stream.Event[Order]]) (string, error) {
	ev, err := s.Next(ctx)
	if err != nil {
		return "", err
	}
	return ev.FullDocument.Item, nil
}

// nextItems is code under test too: it handles the next n orders of a
// stream with the pull API.
func nextItems(ctx context.Context, s *stream.Stream[stream.Event[Order]], n int) ([]string, error) {
	var items []string
	for range n {
		ev, err := s.Next(ctx)
		if err != nil {
			return items, err
		}
		items = append(items, ev.FullDocument.Item)
	}
	return items, nil
}

// Recovery: the stream mends a fault by itself, and a consumer that
// crashes goes on from its checkpoint with the same Name and Store. Every
// event comes at least once; only the one handled but not committed when
// the consumer crashed comes again.
func TestRecovery(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*mongotest.Server)
	}{
		{"all connections dropped", (*mongotest.Server).DropConnections},
		{"server restart", (*mongotest.Server).Restart},
		{"getMore error the driver does not resume", func(srv *mongotest.Server) {
			srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, orders, ctx := connect(t)
			store := &stream.MemoryStore{} // a FileStore or CollectionStore in production
			opts := &stream.Options{Name: "orders", Store: store, CheckpointEvery: 1}

			s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			insert(t, ctx, orders, "tea")
			if items, err := nextItems(ctx, s, 1); err != nil || items[0] != "tea" {
				t.Fatalf("before the fault: %v, %v", items, err)
			}

			tt.fault(srv) // the stream mends it by itself
			insert(t, ctx, orders, "cake", "jam")
			items, err := nextItems(ctx, s, 2)
			if err != nil || items[0] != "cake" || items[1] != "jam" {
				t.Fatalf("after the fault: %v, %v; want [cake jam]", items, err)
			}

			// The consumer crashes after handling jam: no Close, so jam was
			// never committed. A new stream with the same Name and Store
			// resumes from the checkpoint.
			s, err = stream.Watch[stream.Event[Order]](ctx, orders, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			if s.Stats().Checkpoint.Token.IsZero() {
				t.Fatal("the new stream did not resume from a checkpoint")
			}
			insert(t, ctx, orders, "scones")
			items, err = nextItems(ctx, s, 2)
			if err != nil || items[0] != "jam" || items[1] != "scones" {
				t.Fatalf("after the crash: %v, %v; want [jam scones]", items, err)
			}
		})
	}
}

// A resume point older than the history fails loudly.
func TestHistoryLost(t *testing.T) {
	srv, orders, ctx := connect(t)
	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, ctx, orders, "tea")
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	saved := s.ResumeToken()
	s.Close(ctx)

	insert(t, ctx, orders, "cake") // never seen
	srv.TruncateHistory()          // the oplog rolled over

	_, err = stream.Watch[stream.Event[Order]](ctx, orders, nil, nil,
		options.ChangeStream().SetResumeAfter(saved.Raw()))
	if !errors.Is(err, stream.ErrHistoryLost) {
		t.Fatalf("Watch after the history was lost: %v, want ErrHistoryLost", err)
	}
}

// Tests written for a real server configure failpoints with a command.
func TestConfigureFailPoint(t *testing.T) {
	_, orders, ctx := connect(t)
	admin := orders.Database().Client().Database("admin")
	err := admin.RunCommand(ctx, bson.D{
		{Key: "configureFailPoint", Value: "failCommand"},
		{Key: "mode", Value: bson.D{{Key: "times", Value: 1}}},
		{Key: "data", Value: bson.D{
			{Key: "failCommands", Value: bson.A{"insert"}},
			{Key: "errorCode", Value: 11600}, // InterruptedAtShutdown
		}},
	}).Err()
	if err != nil {
		t.Fatal(err)
	}
	// The driver retries the write once; the retry succeeds.
	if _, err := orders.InsertOne(ctx, bson.D{{Key: "item", Value: "tea"}}); err != nil {
		t.Fatalf("retryable write: %v", err)
	}
}

// The first snippet: a server per test, and a client of it.
func TestAServerPerTest(t *testing.T) {
	srv := mongotest.New(t, nil) // closed when the test ends
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	orders := client.Database("shop").Collection("orders")
	if _, err := orders.InsertOne(context.Background(), Order{Item: "tea", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	var got Order
	if err := orders.FindOne(context.Background(), bson.D{{Key: "item", Value: "tea"}}).Decode(&got); err != nil || got.Qty != 1 {
		t.Fatalf("FindOne = %+v, %v", got, err)
	}
}
