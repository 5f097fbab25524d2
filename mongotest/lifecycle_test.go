package mongotest_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// signal is a channel closed once, the first time its fire is called.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// wait fails the test if the signal does not fire within d.
func (s *signal) wait(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case <-s.ch:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// monitoredClient connects a client whose monitors fire getMore on each
// getMore the driver sends and streaming on each awaited (streaming) hello.
func monitoredClient(t *testing.T, uri string, getMore, streaming *signal) *mongo.Client {
	t.Helper()
	return monitoredClientAgg(t, uri, getMore, streaming, nil, nil)
}

// monitoredClientAgg is monitoredClient whose monitor also sends on
// aggregated after each aggregate that succeeded and on getMores (without
// blocking) when a getMore starts.
func monitoredClientAgg(t *testing.T, uri string, getMore, streaming *signal, aggregated, getMores chan<- struct{}) *mongo.Client {
	t.Helper()
	opts := options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second)
	if streaming == nil {
		// Polling monitoring: a fault then clears the driver's pool once
		// (on the failed getMore), not twice, so that the resume is
		// deterministic. Streaming monitoring is exercised by the Close tests.
		opts.SetServerMonitoringMode(options.ServerMonitoringModePoll)
	}
	opts.SetMonitor(&event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if e.CommandName == "getMore" && getMore != nil {
				getMore.fire()
			}
			if e.CommandName == "getMore" && getMores != nil {
				select {
				case getMores <- struct{}{}:
				default:
				}
			}
		},
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			if testing.Verbose() {
				t.Logf("%s failed: %v", e.CommandName, e.Failure)
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			if testing.Verbose() {
				t.Logf("%s succeeded", e.CommandName)
			}
			if e.CommandName == "aggregate" && aggregated != nil {
				aggregated <- struct{}{}
			}
		},
	})
	opts.SetServerMonitor(&event.ServerMonitor{ServerHeartbeatStarted: func(e *event.ServerHeartbeatStartedEvent) {
		if e.Awaited && streaming != nil {
			streaming.fire()
		}
	}})
	c, err := mongo.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCloseWithBusyClients closes a server while a change stream waits in
// getMore, the driver streams hello, and raw clients hold idle or
// half-written connections without ever hanging up. Close must return
// promptly and leave no server goroutine behind.
func TestCloseWithBusyClients(t *testing.T) {
	check := checkGoroutines(t)
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	getMore, streaming := newSignal(), newSignal()
	client := monitoredClient(t, srv.URI(), getMore, streaming)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cs, err := client.Database("life").Collection("c").Watch(ctx, mongo.Pipeline{},
		options.ChangeStream().SetMaxAwaitTime(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	nextDone := make(chan bool)
	go func() { nextDone <- cs.Next(ctx) }()
	getMore.wait(t, "the change stream's getMore", 5*time.Second)
	streaming.wait(t, "a streaming hello", 5*time.Second)

	// A client that connects and never sends anything, and one that stops
	// in the middle of a frame.
	idle, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	half, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write([]byte{200, 0, 0, 0, 1, 2}); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	check()

	// The waiting Next ends: the server is gone and its resume cannot
	// select a server until the context ends.
	cancel()
	select {
	case ok := <-nextDone:
		if ok {
			t.Error("Next returned an event after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after Close")
	}
	// The raw clients see the connection closed.
	for name, c := range map[string]net.Conn{"idle": idle, "half-written": half} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("%s client: read %d bytes, err %v; want the connection closed", name, n, err)
		}
	}
	disconnectNow(client)
}

// disconnectNow disconnects a client of a closed server without waiting
// for server selection.
func disconnectNow(client *mongo.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = client.Disconnect(ctx)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestCloseTwice checks that Close is idempotent and joins its goroutines
// both times.
func TestCloseTwice(t *testing.T) {
	check := checkGoroutines(t)
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := monitoredClient(t, srv.URI(), nil, nil)
	defer disconnectNow(client)
	if err := client.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv.Close()
	check()
}

// topologyProcessID asks the server for its topology version's process id.
func topologyProcessID(t *testing.T, client *mongo.Client) bson.ObjectID {
	t.Helper()
	var reply struct {
		TopologyVersion struct {
			ProcessID bson.ObjectID `bson:"processId"`
		} `bson:"topologyVersion"`
	}
	if err := client.Database("admin").RunCommand(context.Background(), bson.D{{Key: "hello", Value: 1}}).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	return reply.TopologyVersion.ProcessID
}

// TestFaultsResumeChangeStream interrupts a change stream waiting in
// getMore with Restart or DropConnections: the driver resumes from its
// token and the stream goes on with the next write, on the same address.
func TestFaultsResumeChangeStream(t *testing.T) {
	tests := []struct {
		name         string
		fault        func(*mongotest.Server)
		newProcessID bool
	}{
		{"Restart", (*mongotest.Server).Restart, true},
		{"DropConnections", (*mongotest.Server).DropConnections, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := checkGoroutines(t)
			srv, err := mongotest.NewServer(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				srv.Close()
				check()
			}()
			aggregated := make(chan struct{}, 10)
			getMores := make(chan struct{}, 10)
			client := monitoredClientAgg(t, srv.URI(), nil, nil, aggregated, getMores)
			defer client.Disconnect(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			coll := client.Database("life").Collection("c")
			addr := srv.Addr()
			pid := topologyProcessID(t, client)

			cs, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetMaxAwaitTime(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			<-aggregated
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "before"}}); err != nil {
				t.Fatal(err)
			}
			if !cs.Next(ctx) {
				t.Fatalf("Next: %v", cs.Err())
			}
			for len(getMores) > 0 {
				<-getMores
			}
			next := make(chan bool, 1)
			go func() { next <- cs.Next(ctx) }()
			// A ChangeStream is not safe for concurrent use: join the
			// goroutine before the deferred cs.Close.
			joined := false
			defer func() {
				if !joined {
					cancel()
					<-next
				}
			}()
			<-getMores
			tc.fault(srv)
			// Wait for the driver's resume, so that the insert does not race
			// with the pool being cleared.
			select {
			case <-aggregated:
			case ok := <-next:
				joined = true
				t.Fatalf("Next ended before the driver resumed: %v, %v", ok, cs.Err())
			}
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "after"}}); err != nil {
				t.Fatalf("insert after %s: %v", tc.name, err)
			}
			ok := <-next
			joined = true
			if !ok {
				t.Fatalf("Next after %s: %v", tc.name, cs.Err())
			}
			if id := cs.Current.Lookup("documentKey", "_id").StringValue(); id != "after" {
				t.Errorf("event after %s is for %q, want \"after\"", tc.name, id)
			}
			if srv.Addr() != addr {
				t.Errorf("address changed from %s to %s", addr, srv.Addr())
			}
			if got := topologyProcessID(t, client); (got != pid) != tc.newProcessID {
				t.Errorf("processId %s -> %s; want a new one: %v", pid, got, tc.newProcessID)
			}
			// The data is still there.
			cur, err := coll.Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var docs []bson.D
			if err := cur.All(ctx, &docs); err != nil || len(docs) != 2 {
				t.Errorf("find returned %d documents, %v; want 2", len(docs), err)
			}
			// Restart killed the interrupted cursor. After DropConnections the
			// driver kills it before resuming, but only on a best-effort basis:
			// when the pool is being cleared the killCursors is never sent,
			// and, as on a real server, the orphaned cursor stays open.
			open := srv.OpenCursors()
			if open != 1 && (tc.newProcessID || open != 2) {
				t.Errorf("OpenCursors = %d while streaming", open)
			}
			if err := cs.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := srv.OpenCursors(); n != open-1 {
				t.Errorf("OpenCursors = %d after Close, want %d", n, open-1)
			}
		})
	}
}

// TestCursorOutlivesConnection checks that a change-stream cursor stays
// open when the connection that created it closes, as on a real server,
// and that a consumer which closes its stream leaves no cursor behind.
func TestCursorOutlivesConnection(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("life").Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.OpenCursors(); n != 1 {
		t.Fatalf("OpenCursors = %d, want 1", n)
	}
	srv.DropConnections()
	if n := srv.OpenCursors(); n != 1 {
		t.Errorf("OpenCursors after DropConnections = %d, want 1", n)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	if err := cs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.OpenCursors(); n != 0 {
		t.Errorf("OpenCursors after Close = %d, want 0", n)
	}
}
