package stream_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// fixture is a deployment to test against: a mongotest server, or the
// deployment MONGODB_URI names. Each fixture uses a database of its own.
type fixture struct {
	srv    *mongotest.Server // nil against a real deployment
	client *mongo.Client
	db     *mongo.Database
	coll   *mongo.Collection
	mon    *monitor
	pool   *mongotest.PoolWatch // lets writes retry after an injected fault
	ctx    context.Context
}

// newFixture connects to mongotest, or to MONGODB_URI when it is set.
// extra client options apply after the defaults.
func newFixture(t *testing.T, extra ...*options.ClientOptions) *fixture {
	t.Helper()
	return newFixtureAt(t, "", extra...)
}

// newFixtureAt connects to the deployment at uri; "" means as newFixture.
// A fixture at a uri has no mongotest hooks.
func newFixtureAt(t *testing.T, uri string, extra ...*options.ClientOptions) *fixture {
	t.Helper()
	f := &fixture{mon: newMonitor(), pool: mongotest.NewPoolWatch()}
	if uri == "" {
		uri = os.Getenv("MONGODB_URI")
	}
	if uri == "" {
		f.srv = mongotest.New(t, nil)
		uri = f.srv.URI()
	}
	opts := []*options.ClientOptions{
		options.Client().ApplyURI(uri).SetMonitor(f.mon.commandMonitor()).SetServerSelectionTimeout(5 * time.Second).
			SetPoolMonitor(f.pool.Monitor()),
	}
	client, err := mongo.Connect(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f.ctx = ctx
	var b [6]byte
	_, _ = rand.Read(b[:])
	f.client = client
	f.db = client.Database("cstest_" + hex.EncodeToString(b[:]))
	f.coll = f.db.Collection("orders")
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if f.srv == nil {
			_ = f.db.Drop(cctx)
		}
		_ = client.Disconnect(cctx)
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

func (f *fixture) insert(t *testing.T, docs ...Order) {
	t.Helper()
	for _, d := range docs {
		tries := 0
		err := f.pool.Retry(f.ctx, func() error {
			tries++
			_, err := f.coll.InsertOne(f.ctx, d)
			if tries > 1 && mongo.IsDuplicateKeyError(err) {
				return nil // the earlier try landed
			}
			return err
		})
		if err != nil {
			t.Fatalf("insert %v: %v", d, err)
		}
	}
}

// monitor records the commands the client sends and the replies it gets.
type monitor struct {
	mu      sync.Mutex
	started []command
	replies []command
	wake    chan struct{}
}

type command struct {
	name string
	doc  bson.Raw
}

func newMonitor() *monitor { return &monitor{wake: make(chan struct{})} }

func (m *monitor) commandMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			m.add(&m.started, command{e.CommandName, clone(e.Command)})
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			m.add(&m.replies, command{e.CommandName, clone(e.Reply)})
		},
	}
}

func clone(b bson.Raw) bson.Raw { return append(bson.Raw(nil), b...) }

func (m *monitor) add(list *[]command, c command) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*list = append(*list, c)
	close(m.wake)
	m.wake = make(chan struct{})
}

// commands returns the started commands named name.
func (m *monitor) commands(name string) []bson.Raw {
	return m.filter(&m.started, name)
}

// repliesTo returns the successful replies to commands named name.
func (m *monitor) repliesTo(name string) []bson.Raw {
	return m.filter(&m.replies, name)
}

func (m *monitor) filter(list *[]command, name string) []bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bson.Raw
	for _, c := range *list {
		if c.name == name {
			out = append(out, c.doc)
		}
	}
	return out
}

// waitStarted waits until at least n commands named name have started.
func (m *monitor) waitStarted(t *testing.T, ctx context.Context, name string, n int) {
	t.Helper()
	m.wait(t, ctx, func() []command { return m.started }, "started", name, n)
}

// waitReplies waits until at least n commands named name have succeeded.
func (m *monitor) waitReplies(t *testing.T, ctx context.Context, name string, n int) {
	t.Helper()
	m.wait(t, ctx, func() []command { return m.replies }, "succeeded", name, n)
}

// wait waits until list, read under m.mu, holds at least n commands named
// name.
func (m *monitor) wait(t *testing.T, ctx context.Context, list func() []command, what, name string, n int) {
	t.Helper()
	for {
		m.mu.Lock()
		count := 0
		for _, c := range list() {
			if c.name == name {
				count++
			}
		}
		wake := m.wake
		m.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("waiting for %d %s commands to have %s: %v", n, name, what, ctx.Err())
		}
	}
}

// changeStreamStage returns the $changeStream stage of an aggregate.
func changeStreamStage(t *testing.T, agg bson.Raw) bson.Raw {
	t.Helper()
	st, ok := agg.Lookup("pipeline", "0", "$changeStream").DocumentOK()
	if !ok {
		t.Fatalf("aggregate without $changeStream: %v", agg)
	}
	return st
}
