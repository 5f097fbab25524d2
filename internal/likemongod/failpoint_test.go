package likemongod_test

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mongod's failCommand reads the data fields it knows and ignores the
// rest: the Node.js driver's tests send errmsg.
func TestFailPointIgnoresUnusedData(t *testing.T) {
	f := newFixture(t, options.Client().SetRetryWrites(false))
	f.failPoint(t, "failCommand", bson.D{{Key: "times", Value: 1}}, bson.D{
		{Key: "failCommands", Value: bson.A{"insert"}},
		{Key: "errorCode", Value: 2},
		{Key: "errmsg", Value: "a message mongod does not use"},
	})
	_, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}})
	wantCode(t, err, 2, "insert under the failpoint")
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatalf("second insert after times: 1: %v", err)
	}
}

// A mode with both times and skip is accepted and times wins: the Go
// driver's own tests send both.
func TestFailPointTimesWinsOverSkip(t *testing.T) {
	f := newFixture(t, options.Client().SetRetryWrites(false))
	f.failPoint(t, "failCommand", bson.D{{Key: "times", Value: 1}, {Key: "skip", Value: 5}}, bson.D{
		{Key: "failCommands", Value: bson.A{"insert"}},
		{Key: "errorCode", Value: 2},
	})
	_, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}})
	wantCode(t, err, 2, "first insert (times: 1 fires at once; skip is not applied)")
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatalf("second insert: %v", err)
	}
}

// data.writeConcernError runs the command and answers it with the write
// concern error; RetryableWriteError comes with a retryable code.
func TestFailPointWriteConcernError(t *testing.T) {
	f := newFixture(t, options.Client().SetRetryWrites(false))
	f.failPoint(t, "failCommand", bson.D{{Key: "times", Value: 1}}, bson.D{
		{Key: "failCommands", Value: bson.A{"insert"}},
		{Key: "writeConcernError", Value: bson.D{{Key: "code", Value: 91}, {Key: "errmsg", Value: "Replication is being shut down"}}},
	})
	_, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}})
	var we mongo.WriteException
	if !errors.As(err, &we) || we.WriteConcernError == nil || we.WriteConcernError.Code != 91 {
		t.Fatalf("insert: got %v, want a write concern error 91", err)
	}
	n, err := f.coll.CountDocuments(f.ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("count after the write concern error = %d, %v; want 1 (the insert ran)", n, err)
	}
}

// Inside a retryable write mongod labels a retryable code
// RetryableWriteError; explicit errorLabels replace what it would add.
func TestFailPointLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels bson.A // nil: none given
		want   []string
		omit   []string
	}{
		{name: "server adds RetryableWriteError", want: []string{"RetryableWriteError"}},
		{name: "explicit empty labels", labels: bson.A{}, omit: []string{"RetryableWriteError"}},
		{name: "explicit labels", labels: bson.A{"Custom"}, want: []string{"Custom"}, omit: []string{"RetryableWriteError"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// retryWrites on: the insert carries a txnNumber. The driver
			// retries a RetryableWriteError once; times: 2 fails both.
			// (Under a context deadline the driver would retry until the
			// deadline, so this insert runs without one.)
			f := newFixture(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			data := bson.D{{Key: "failCommands", Value: bson.A{"insert"}}, {Key: "errorCode", Value: 10107}}
			if tc.labels != nil {
				data = append(data, bson.E{Key: "errorLabels", Value: tc.labels})
			}
			f.failPoint(t, "failCommand", bson.D{{Key: "times", Value: 2}}, data)
			_, err := f.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}})
			var se mongo.ServerError
			if !errors.As(err, &se) {
				t.Fatalf("insert: got %v, want a server error", err)
			}
			for _, l := range tc.want {
				if !se.HasErrorLabel(l) {
					t.Errorf("error %v lacks label %s", err, l)
				}
			}
			for _, l := range tc.omit {
				if se.HasErrorLabel(l) {
					t.Errorf("error %v has label %s", err, l)
				}
			}
		})
	}
}

// onPrimaryTransactionalWrite applies a retryable write and loses its
// reply with the connection (or, with failBeforeCommitExceptionCode,
// does not apply it): the driver's retry then succeeds and the document
// is written once.
func TestOnPrimaryTransactionalWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		data bson.D
	}{
		{name: "write applied, reply lost"},
		{name: "write not applied", data: bson.D{{Key: "failBeforeCommitExceptionCode", Value: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			// No deadline: under one the driver retries without limit.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.failPoint(t, "onPrimaryTransactionalWrite", bson.D{{Key: "times", Value: 1}}, tc.data)
			if _, err := f.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
				t.Fatalf("retryable insert: %v", err)
			}
			if n, err := f.coll.CountDocuments(f.ctx, bson.D{}); err != nil || n != 1 {
				t.Fatalf("count = %d, %v; want 1", n, err)
			}
		})
	}
}
