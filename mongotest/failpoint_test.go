package mongotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// insertOutcome inserts a document and returns the server error code, 0
// on success, or -1 for a network error.
func insertOutcome(ctx context.Context, t *testing.T, coll *mongo.Collection) int {
	t.Helper()
	_, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}})
	if err == nil {
		return 0
	}
	if mongo.IsNetworkError(err) {
		return -1
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		var ce mongo.CommandError
		if errors.As(err, &ce) {
			return int(ce.Code)
		}
		var we mongo.WriteException
		if errors.As(err, &we) && len(we.WriteErrors) > 0 {
			return we.WriteErrors[0].Code
		}
	}
	t.Fatalf("unexpected error %T: %v", err, err)
	return 0
}

func TestConfigureFailPoint(t *testing.T) {
	tests := []struct {
		name string
		fp   bson.D
		want []int // outcome of consecutive inserts
	}{
		{"times", bson.D{{Key: "mode", Value: bson.D{{Key: "times", Value: 2}}},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 2}}}},
			[]int{2, 2, 0}},
		{"skip", bson.D{{Key: "mode", Value: bson.D{{Key: "skip", Value: 1}}},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 2}}}},
			[]int{0, 2, 2}},
		{"alwaysOn", bson.D{{Key: "mode", Value: "alwaysOn"},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 2}}}},
			[]int{2, 2, 2}},
		{"other command", bson.D{{Key: "mode", Value: "alwaysOn"},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"find"}}, {Key: "errorCode", Value: 2}}}},
			[]int{0, 0}},
		{"other appName", bson.D{{Key: "mode", Value: "alwaysOn"},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 2}, {Key: "appName", Value: "other"}}}},
			[]int{0, 0}},
		{"own appName", bson.D{{Key: "mode", Value: bson.D{{Key: "times", Value: 1}}},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 2}, {Key: "appName", Value: "fptest"}}}},
			[]int{2, 0}},
		{"closeConnection", bson.D{{Key: "mode", Value: bson.D{{Key: "times", Value: 1}}},
			{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "closeConnection", Value: true}}}},
			[]int{-1, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mongotest.New(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := connectWith(t, options.Client().ApplyURI(srv.URI()).SetAppName("fptest").SetRetryWrites(false))
			cmd := append(bson.D{{Key: "configureFailPoint", Value: "failCommand"}}, tc.fp...)
			if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
				t.Fatal(err)
			}
			coll := client.Database("db").Collection("c")
			for i, want := range tc.want {
				if got := insertOutcome(ctx, t, coll); got != want {
					t.Fatalf("insert %d: outcome %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestConfigureFailPointErrors(t *testing.T) {
	srv := mongotest.New(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := connect(t, srv.URI())
	tests := []struct {
		name string
		db   string
		cmd  bson.D
		code int32
	}{
		{"not admin", "db", bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "off"}}, 13},
		{"unknown failpoint", "admin", bson.D{{Key: "configureFailPoint", Value: "nope"}, {Key: "mode", Value: "off"}}, 2},
		{"bad mode", "admin", bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "sometimes"}}, 2},
		{"no failCommands", "admin", bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "alwaysOn"},
			{Key: "data", Value: bson.D{{Key: "errorCode", Value: 2}}}}, 72},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := client.Database(tc.db).RunCommand(ctx, tc.cmd).Err()
			var ce mongo.CommandError
			if !errors.As(err, &ce) || ce.Code != tc.code {
				t.Fatalf("err = %v, want code %d", err, tc.code)
			}
		})
	}
	// configureFailPoint itself is never failed.
	fail := bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "alwaysOn"},
		{Key: "data", Value: bson.D{{Key: "failCommands", Value: bson.A{"configureFailPoint", "ping"}}, {Key: "errorCode", Value: 2}}}}
	if err := client.Database("admin").RunCommand(ctx, fail).Err(); err != nil {
		t.Fatal(err)
	}
	off := bson.D{{Key: "configureFailPoint", Value: "failCommand"}, {Key: "mode", Value: "off"}}
	if err := client.Database("admin").RunCommand(ctx, off).Err(); err != nil {
		t.Fatalf("configureFailPoint off: %v", err)
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatalf("ping after off: %v", err)
	}
}

func TestFailCommandLabels(t *testing.T) {
	tests := []struct {
		name      string
		fp        mongotest.FailPoint
		op        string // insert, retryable insert or getMore
		wantLabel string
		wantNone  string
	}{
		// A retryable write (retry writes on, Times 2: the driver's retry
		// fails too) is labelled RetryableWriteError; see retryableInsert.
		{"retryable write", mongotest.FailPoint{Commands: []string{"insert"}, ErrorCode: 10107, Times: 2}, "retryable insert", "RetryableWriteError", ""},
		// Without a txnNumber the insert is no retryable write: no label,
		// as on a real server.
		{"not a retryable write", mongotest.FailPoint{Commands: []string{"insert"}, ErrorCode: 10107, Times: 1}, "insert", "", "RetryableWriteError"},
		{"explicit labels", mongotest.FailPoint{Commands: []string{"insert"}, ErrorCode: 10107, Times: 1, ErrorLabels: []string{}}, "insert", "", "RetryableWriteError"},
		{"non-retryable code", mongotest.FailPoint{Commands: []string{"insert"}, ErrorCode: 2, Times: 1}, "insert", "", "RetryableWriteError"},
		{"getMore before checkout", mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, Times: 1}, "getMore", "", "ResumableChangeStreamError"},
		{"getMore after checkout", mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 6, Times: 1}, "getMore", "ResumableChangeStreamError", ""},
		{"after checkout, fatal code", mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 2, Times: 1}, "getMore", "", "ResumableChangeStreamError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mongotest.New(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := connectWith(t, options.Client().ApplyURI(srv.URI()).SetRetryWrites(false))
			coll := client.Database("db").Collection("c")
			var err error
			switch tc.op {
			case "insert":
				srv.FailCommand(tc.fp)
				_, err = coll.InsertOne(ctx, bson.D{})
			case "retryable insert":
				// Under a context deadline the driver would retry until the
				// deadline: this insert runs without one.
				retrying := connectWith(t, options.Client().ApplyURI(srv.URI()))
				srv.FailCommand(tc.fp)
				_, err = retrying.Database("db").Collection("c").InsertOne(context.Background(), bson.D{})
			case "getMore":
				// A raw getMore on a change-stream cursor, so that the driver
				// does not resume.
				db := client.Database("db")
				var reply struct {
					Cursor struct {
						ID int64 `bson:"id"`
					} `bson:"cursor"`
				}
				agg := bson.D{{Key: "aggregate", Value: "c"}, {Key: "pipeline", Value: bson.A{bson.D{{Key: "$changeStream", Value: bson.D{}}}}}, {Key: "cursor", Value: bson.D{}}}
				if err := db.RunCommand(ctx, agg).Decode(&reply); err != nil {
					t.Fatal(err)
				}
				srv.FailCommand(tc.fp)
				err = db.RunCommand(ctx, bson.D{{Key: "getMore", Value: reply.Cursor.ID}, {Key: "collection", Value: "c"}, {Key: "maxTimeMS", Value: 1}}).Err()
			}
			var se mongo.ServerError
			if !errors.As(err, &se) || !se.HasErrorCode(int(tc.fp.ErrorCode)) {
				t.Fatalf("err = %v, want code %d", err, tc.fp.ErrorCode)
			}
			if tc.wantLabel != "" && !se.HasErrorLabel(tc.wantLabel) {
				t.Errorf("err = %v, want label %s", err, tc.wantLabel)
			}
			if tc.wantNone != "" && se.HasErrorLabel(tc.wantNone) {
				t.Errorf("err = %v, want no label %s", err, tc.wantNone)
			}
		})
	}
}

func TestFailCommandBlockAndClear(t *testing.T) {
	srv := mongotest.New(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := connect(t, srv.URI())
	db := client.Database("db")
	srv.FailCommand(mongotest.FailPoint{Commands: []string{"ping"}, BlockFor: 150 * time.Millisecond})
	start := time.Now()
	if err := db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatalf("blocked ping: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("ping took %v, want at least the 150ms block", d)
	}
	srv.FailCommand(mongotest.FailPoint{Commands: []string{"ping"}, ErrorCode: 91})
	err := db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 91 {
		t.Fatalf("err = %v, want ShutdownInProgress", err)
	}
	if ce.Raw.Lookup("topologyVersion").Type != bson.TypeEmbeddedDocument {
		t.Errorf("ShutdownInProgress reply has no topologyVersion: %s", ce.Raw)
	}
	srv.ClearFailPoints()
	if err := db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Fatalf("ping after ClearFailPoints: %v", err)
	}
}

func connectWith(t *testing.T, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(opts.SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}
