package mongotest

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/handler"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "record the driver's messages as fuzz seeds under testdata/fuzz")

// FuzzDispatch runs arbitrary (valid BSON) command documents through the
// command dispatcher of one server: no input may panic or hang, and every
// reply must be a valid document with ok.
func FuzzDispatch(f *testing.F) {
	f.Add([]byte(bsoncore.NewDocumentBuilder().AppendInt32("ping", 1).AppendString("$db", "admin").Build()))
	srv, err := NewServer(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		if bsonutil.Validate(cmd) != nil {
			return
		}
		// Every wait (getMore, streaming hello, blockConnection) ends when
		// the connection does.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c := &conn{s: srv, cancel: cancel, hc: handler.Conn{ID: 1, Ctx: ctx}}
		start := time.Now()
		res := srv.mux.Serve(&c.hc, &wire.Message{OpCode: wiremessage.OpMsg, Cmd: cmd})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("dispatch took %v", d)
		}
		if res.CloseConn {
			return
		}
		if res.Doc == nil {
			t.Fatal("no reply and the connection kept open")
		}
		if err := bsonutil.Validate(res.Doc); err != nil {
			t.Fatalf("invalid reply: %v", err)
		}
		if _, err := res.Doc.LookupErr("ok"); err != nil {
			t.Fatalf("reply without ok: %s", res.Doc)
		}
		if code, ok := res.Doc.Lookup("code").Int32OK(); ok && code == codes.InternalError {
			t.Fatalf("internal error: %s", res.Doc)
		}
	})
}

// TestRecordFuzzSeeds records the messages the Go driver sends during a
// typical session as seeds of both fuzzers: FuzzDispatch here and
// FuzzParseMessage in internal/wire. It runs with -update-fuzz-seeds; the
// seeds are kept in testdata/fuzz of each package.
func TestRecordFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-fuzz-seeds to record new seeds")
	}
	srv, err := NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var frames [][]byte
	srv.frameHook = func(fr []byte) {
		mu.Lock()
		frames = append(frames, append([]byte(nil), fr...))
		mu.Unlock()
	}
	driverSession(t, srv)
	srv.Close()

	seen := map[string]bool{}
	for _, fr := range frames {
		m, err := wire.Parse(fr)
		if err != nil {
			t.Fatalf("the driver sent a frame mongotest rejects: %v", err)
		}
		writeSeed(t, filepath.Join("internal", "wire", "testdata", "fuzz", "FuzzParseMessage"), fr, seen)
		writeSeed(t, filepath.Join("testdata", "fuzz", "FuzzDispatch"), m.Cmd, seen)
	}
	t.Logf("recorded %d frames", len(frames))
}

// writeSeed writes one corpus file, named after its content, to dir.
func writeSeed(t *testing.T, dir string, data []byte, seen map[string]bool) {
	sum := fmt.Sprintf("%x", sha256.Sum256(data))[:16]
	if seen[dir+sum] {
		return
	}
	seen[dir+sum] = true
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, "driver-"+sum), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// driverSession drives the server through the commands a change-stream
// consumer and its tests send.
func driverSession(t *testing.T, srv *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetAppName("seeds"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database("seeds")
	coll := db.Collection("orders")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(client.Ping(ctx, nil))
	cs, err := coll.Watch(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "operationType", Value: "insert"}}}},
		{{Key: "$project", Value: bson.D{{Key: "fullDocument.item", Value: 1}, {Key: "n", Value: "$fullDocument.n"}}}},
		{{Key: "$set", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$literal", Value: 1}}}}}},
		{{Key: "$unset", Value: bson.A{"ns"}}},
	}, options.ChangeStream().SetFullDocument(options.UpdateLookup).SetBatchSize(2).SetMaxAwaitTime(50*time.Millisecond))
	must(err)
	dbs, err := db.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetShowExpandedEvents(true))
	must(err)
	all, err := client.Watch(ctx, mongo.Pipeline{{{Key: "$replaceWith", Value: "$$ROOT"}}}, options.ChangeStream().SetStartAtOperationTime(&bson.Timestamp{T: 1, I: 1}))
	if err == nil {
		all.TryNext(ctx)
		must(all.Close(ctx))
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "item", Value: "tea"}, {Key: "n", Value: 1.5}})
	must(err)
	_, err = coll.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 2}, {Key: "tags", Value: bson.A{"a", bson.D{{Key: "b", Value: true}}}}},
		bson.D{{Key: "_id", Value: 3}, {Key: "when", Value: time.Unix(0, 0)}, {Key: "bin", Value: bson.Binary{Data: []byte{1}}}},
	})
	must(err)
	if cs.Next(ctx) {
		_ = cs.ResumeToken()
	}
	cs.TryNext(ctx)
	_, _ = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "item", Value: "green tea"}}}})
	_, _ = coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 2}}, bson.D{{Key: "v", Value: 2}})
	cur, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: 1}}}}, options.Find().SetBatchSize(1))
	if err == nil {
		var docs []bson.D
		_ = cur.All(ctx, &docs)
	}
	_, _ = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 3}})
	_, _ = coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "item", Value: 1}}})
	_, _ = db.ListCollectionNames(ctx, bson.D{})
	_ = db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Err()
	_ = db.RunCommand(ctx, bson.D{{Key: "collMod", Value: "orders"}}).Err()
	dbs.TryNext(ctx)
	must(cs.Close(ctx))
	must(coll.Drop(ctx))
	dbs.TryNext(ctx)
	must(dbs.Close(ctx))
	_ = db.Drop(ctx)
}
