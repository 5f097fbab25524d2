package mongotest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// startedCounter counts the commands a client starts, by name.
type startedCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *startedCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[e.CommandName]++
	}}
}

func (c *startedCounter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// TestRetryableWriteAppliedOnce loses the reply of a write after the
// server applied it: the driver retries with the same lsid and txnNumber,
// and the server answers from its record instead of applying the write a
// second time.
func TestRetryableWriteAppliedOnce(t *testing.T) {
	doc := func(id, n int32) bson.D { return bson.D{{Key: "_id", Value: id}, {Key: "n", Value: n}} }
	tests := []struct {
		name    string
		command string
		op      func(ctx context.Context, coll *mongo.Collection) (any, error)
		want    any // the operation's result
		wantAll []bson.D
	}{
		{"insert", "insert", func(ctx context.Context, coll *mongo.Collection) (any, error) {
			r, err := coll.InsertOne(ctx, doc(2, 0))
			if err != nil {
				return nil, err
			}
			return r.InsertedID, nil
		}, int32(2), []bson.D{doc(1, 10), doc(2, 0)}},
		{"update with $inc", "update", func(ctx context.Context, coll *mongo.Collection) (any, error) {
			r, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
			if err != nil {
				return nil, err
			}
			return [2]int64{r.MatchedCount, r.ModifiedCount}, nil
		}, [2]int64{1, 1}, []bson.D{doc(1, 11)}},
		{"findAndModify with $inc", "findAndModify", func(ctx context.Context, coll *mongo.Collection) (any, error) {
			var got bson.D
			err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 5}}}},
				options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&got)
			return got, err
		}, doc(1, 15), []bson.D{doc(1, 15)}},
		{"delete", "delete", func(ctx context.Context, coll *mongo.Collection) (any, error) {
			r, err := coll.DeleteOne(ctx, bson.D{})
			if err != nil {
				return nil, err
			}
			return r.DeletedCount, nil
		}, int64(1), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mongotest.New(t, nil)
			counter := &startedCounter{n: map[string]int{}}
			client := connectWith(t, options.Client().ApplyURI(srv.URI()).SetMonitor(counter.monitor()).
				SetHeartbeatInterval(500*time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			coll := client.Database("retry").Collection("c")
			if _, err := coll.InsertOne(ctx, doc(1, 10)); err != nil {
				t.Fatal(err)
			}
			before := counter.get(tc.command)
			srv.FailCommand(mongotest.FailPoint{Commands: []string{tc.command}, Times: 1, CloseConnection: true, AfterExecution: true})

			got, err := tc.op(ctx, coll)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if n := counter.get(tc.command) - before; n != 2 {
				t.Errorf("the driver sent %s %d times, want 2 (the original and its retry)", tc.command, n)
			}
			cur, err := coll.Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			var all []bson.D
			if err := cur.All(ctx, &all); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantAll, all); diff != "" {
				t.Errorf("collection (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAfterExecutionWithoutRetry shows the write applied before the reply
// was lost: with retryable writes off the driver reports the network
// error, yet the document is there.
func TestAfterExecutionWithoutRetry(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connectWith(t, options.Client().ApplyURI(srv.URI()).SetRetryWrites(false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("retry").Collection("c")
	srv.FailCommand(mongotest.FailPoint{Commands: []string{"insert"}, Times: 1, CloseConnection: true, AfterExecution: true})
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
	if !mongo.IsNetworkError(err) {
		t.Fatalf("InsertOne error = %v, want a network error", err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("CountDocuments = %d, %v; want 1", n, err)
	}
}

// TestRetryRecordBySession sends the statements by hand: a repeated
// txnNumber gets the remembered reply, an older one TransactionTooOld
// (225), a newer one runs.
func TestRetryRecordBySession(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := client.Database("retry")
	sess, err := client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.EndSession(ctx)
	sctx := mongo.NewSessionContext(ctx, sess)
	insert := func(txn int64, id int32) (bson.M, error) {
		var reply bson.M
		err := db.RunCommand(sctx, bson.D{{Key: "insert", Value: "c"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: id}}}}, {Key: "txnNumber", Value: txn}}).Decode(&reply)
		return reply, err
	}
	tests := []struct {
		name   string
		txn    int64
		id     int32
		wantN  int32
		code   int
		wantIn []int32 // the ids in the collection afterwards
		end    bool    // end the session first, as a client's Disconnect does
	}{
		{"first", 5, 1, 1, 0, []int32{1}, false},
		{"same txnNumber is answered, not run", 5, 2, 1, 0, []int32{1}, false},
		{"older txnNumber", 4, 3, 0, 225, []int32{1}, false},
		{"newer txnNumber runs", 6, 2, 1, 0, []int32{1, 2}, false},
		{"after endSessions the record is gone", 3, 3, 1, 0, []int32{1, 2, 3}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.end {
				if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "endSessions", Value: bson.A{sess.ID()}}}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			reply, err := insert(tc.txn, tc.id)
			if got := errCode(err); got != tc.code {
				t.Fatalf("insert error %v: code %d, want %d", err, got, tc.code)
			}
			if err == nil && reply["n"] != tc.wantN {
				t.Errorf("reply n = %v, want %d", reply["n"], tc.wantN)
			}
			var got []int32
			if err := db.Collection("c").Distinct(ctx, "_id", bson.D{}).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantIn, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}
