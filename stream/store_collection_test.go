package stream_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// TestCollectionStoreDocument checks the stored document's shape, as a user
// reading the collection with the shell would see it.
func TestCollectionStoreDocument(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := storeTestCollection(t, storeTestClient(t))
	store, err := stream.NewCollectionStore(coll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if store.Collection().Name() != coll.Name() {
		t.Errorf("Collection() = %s", store.Collection().Name())
	}
	cp := sampleCheckpoint(t, realServerToken, time.Millisecond)
	if err := store.Save(ctx, "orders", cp); err != nil {
		t.Fatal(err)
	}
	raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "orders"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	elems, err := raw.Elements()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range elems {
		keys = append(keys, e.Key())
	}
	// Save is a $set upsert (so that it keeps a lease in the document), and
	// update operators write new fields in lexicographic order.
	if got, want := strings.Join(keys, ","), "_id,clusterTime,token,updatedAt,wallTime"; got != want {
		t.Errorf("document fields = %s, want %s", got, want)
	}
	if id := raw.Lookup("_id").StringValue(); id != "orders" {
		t.Errorf("_id = %q", id)
	}
	if data := raw.Lookup("token", "_data").StringValue(); data != realServerToken {
		t.Errorf("token._data = %q", data)
	}
	if ts, inc := raw.Lookup("clusterTime").Timestamp(); ts != 1680529005 || inc != 1 {
		t.Errorf("clusterTime = Timestamp(%d, %d)", ts, inc)
	}
	if ms, ok := raw.Lookup("wallTime").DateTimeOK(); !ok || ms != cp.WallTime.UnixMilli() {
		t.Errorf("wallTime = %v", raw.Lookup("wallTime"))
	}
	if ms, ok := raw.Lookup("updatedAt").DateTimeOK(); !ok || ms != cp.UpdatedAt.UnixMilli() {
		t.Errorf("updatedAt = %v", raw.Lookup("updatedAt"))
	}

	// A checkpoint without a wall time stores null and loads as zero.
	cp.WallTime = time.Time{}
	if err := store.Save(ctx, "orders", cp); err != nil {
		t.Fatal(err)
	}
	raw, err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: "orders"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if typ := raw.Lookup("wallTime").Type; typ != bson.TypeNull {
		t.Errorf("zero wallTime stored as %s, want null", typ)
	}
	got, err := store.Load(ctx, "orders")
	if err != nil || !checkpointsEqual(got, cp) {
		t.Errorf("Load = %s, %v; want %s", fmtCheckpoint(got), err, fmtCheckpoint(cp))
	}
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var all []bson.Raw
	if err := cur.All(ctx, &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Errorf("collection holds %d documents, want 1: Save must upsert in place", len(all))
	}
}

func TestCollectionStoreMalformed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := storeTestCollection(t, storeTestClient(t))
	store, err := stream.NewCollectionStore(coll, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := bson.D{{Key: "_data", Value: realServerToken}}
	now := bson.NewDateTimeFromTime(time.Now())
	ts := bson.Timestamp{T: 1680529005, I: 1}
	tests := []struct {
		name string
		doc  bson.D
		want string
	}{
		{"token missing", bson.D{{Key: "clusterTime", Value: ts}, {Key: "updatedAt", Value: now}}, "token field is missing"},
		{"token is a string", bson.D{{Key: "token", Value: realServerToken}, {Key: "clusterTime", Value: ts}, {Key: "updatedAt", Value: now}}, "not a document"},
		{"token is null", bson.D{{Key: "token", Value: nil}, {Key: "clusterTime", Value: ts}, {Key: "updatedAt", Value: now}}, "not a document"},
		{"token is empty", bson.D{{Key: "token", Value: bson.D{}}, {Key: "clusterTime", Value: ts}, {Key: "updatedAt", Value: now}}, "empty document"},
		{"clusterTime missing", bson.D{{Key: "token", Value: good}, {Key: "updatedAt", Value: now}}, "clusterTime field is missing"},
		{"clusterTime is a date", bson.D{{Key: "token", Value: good}, {Key: "clusterTime", Value: now}, {Key: "updatedAt", Value: now}}, "not a timestamp"},
		{"wallTime is a string", bson.D{{Key: "token", Value: good}, {Key: "clusterTime", Value: ts}, {Key: "wallTime", Value: "today"}, {Key: "updatedAt", Value: now}}, "not a date"},
		{"updatedAt missing", bson.D{{Key: "token", Value: good}, {Key: "clusterTime", Value: ts}}, "updatedAt field is missing"},
		{"updatedAt is a number", bson.D{{Key: "token", Value: good}, {Key: "clusterTime", Value: ts}, {Key: "updatedAt", Value: int64(5)}}, "not a date"},
	}
	wantSource := "collection " + storeTestDB + "." + coll.Name()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "-")
			doc := append(bson.D{{Key: "_id", Value: name}}, tt.doc...)
			if _, err := coll.InsertOne(ctx, doc); err != nil {
				t.Fatal(err)
			}
			cp, err := store.Load(ctx, name)
			var ce *stream.CorruptCheckpointError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %s, %v; want a *CorruptCheckpointError", fmtCheckpoint(cp), err)
			}
			if ce.Stream != name || ce.Source != wantSource {
				t.Errorf("error names stream %q in %q, want %q in %q", ce.Stream, ce.Source, name, wantSource)
			}
			if !strings.Contains(err.Error(), wantSource) || !strings.Contains(err.Error(), name) {
				t.Errorf("message %q does not name the collection and the stream", err)
			}
			if !strings.Contains(ce.Err.Error(), tt.want) {
				t.Errorf("cause = %q, want it to contain %q", ce.Err, tt.want)
			}
			if errors.Is(err, stream.ErrNoCheckpoint) || !cp.Token.IsZero() {
				t.Errorf("a malformed checkpoint must not look like a missing or a valid one")
			}
		})
	}
}

// commandLog records the commands a client sends.
type commandLog struct {
	mu   sync.Mutex
	cmds []bson.Raw
}

func (l *commandLog) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.cmds = append(l.cmds, append(bson.Raw(nil), e.Command...))
	}}
}

// last returns the last command named name.
func (l *commandLog) last(name string) bson.Raw {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.cmds) - 1; i >= 0; i-- {
		if _, err := l.cmds[i].LookupErr(name); err == nil {
			return l.cmds[i]
		}
	}
	return nil
}

func TestCollectionStoreConcerns(t *testing.T) {
	tests := []struct {
		name   string
		opts   *stream.CollectionStoreOptions
		wantW  string // the write concern's w, in extended JSON
		wantOK bool
	}{
		{name: "default is majority", opts: nil, wantW: `"majority"`, wantOK: true},
		{name: "zero options is majority", opts: &stream.CollectionStoreOptions{}, wantW: `"majority"`, wantOK: true},
		{name: "w1", opts: &stream.CollectionStoreOptions{WriteConcern: writeconcern.W1()}, wantW: `{"$numberInt":"1"}`, wantOK: true},
		{name: "unacknowledged is refused", opts: &stream.CollectionStoreOptions{WriteConcern: writeconcern.Unacknowledged()}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var log commandLog
			coll := storeTestCollection(t, storeTestClientWith(t, log.monitor()))
			store, err := stream.NewCollectionStore(coll, tt.opts)
			if !tt.wantOK {
				if err == nil {
					t.Fatal("NewCollectionStore succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Save(ctx, "orders", sampleCheckpoint(t, realServerToken, time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			update := log.last("update")
			if update == nil {
				t.Fatal("no update command was sent")
			}
			if w := update.Lookup("writeConcern", "w").String(); w != tt.wantW {
				t.Errorf("update writeConcern.w = %s, want %s (command %s)", w, tt.wantW, update)
			}
			u := update.Lookup("updates", "0")
			if up, _ := u.Document().Lookup("upsert").BooleanOK(); !up {
				t.Errorf("update is not an upsert: %s", u)
			}
			if _, err := store.Load(ctx, "orders"); err != nil {
				t.Fatal(err)
			}
			find := log.last("find")
			if find == nil {
				t.Fatal("no find command was sent")
			}
			if rc := find.Lookup("readConcern", "level").StringValue(); rc != "majority" {
				t.Errorf("find readConcern.level = %q, want majority (command %s)", rc, find)
			}
		})
	}
	t.Run("nil collection", func(t *testing.T) {
		if _, err := stream.NewCollectionStore(nil, nil); err == nil {
			t.Error("NewCollectionStore(nil) succeeded")
		}
	})
	t.Run("zero CollectionStore", func(t *testing.T) {
		var cs stream.CollectionStore
		if _, err := cs.Load(context.Background(), "orders"); err == nil || errors.Is(err, stream.ErrNoCheckpoint) {
			t.Errorf("Load on a zero CollectionStore = %v, want an error", err)
		}
	})
}

// TestCollectionStoreServerDown checks that a store whose server is gone
// reports an error, never ErrNoCheckpoint. It always uses mongotest, whose
// server the test can stop.
func TestCollectionStoreServerDown(t *testing.T) {
	srv := mongotest.New(t, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetServerSelectionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	store, err := stream.NewCollectionStore(client.Database(storeTestDB).Collection("down"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	defer client.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := store.Load(ctx, "orders"); err == nil || errors.Is(err, stream.ErrNoCheckpoint) {
		t.Errorf("Load with the server down = %v, want an error", err)
	}
	if err := store.Save(ctx, "orders", sampleCheckpoint(t, realServerToken, time.Millisecond)); err == nil {
		t.Errorf("Save with the server down succeeded")
	}
}
