package likemongod_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A cursor belongs to the session that opened it: mongod refuses a
// getMore from another session (50738) or without one (50737).
func TestCursorBelongsToItsSession(t *testing.T) {
	f := newFixture(t)
	docs := make([]any, 5)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	if _, err := f.coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
	owner, err := f.client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer owner.EndSession(f.ctx)
	var first struct {
		Cursor struct {
			ID int64 `bson:"id"`
		} `bson:"cursor"`
	}
	find := bson.D{{Key: "find", Value: f.coll.Name()}, {Key: "batchSize", Value: 1}}
	if err := f.db.RunCommand(mongo.NewSessionContext(f.ctx, owner), find).Decode(&first); err != nil {
		t.Fatal(err)
	}
	if first.Cursor.ID == 0 {
		t.Fatal("find left no cursor open")
	}
	getMore := bson.D{{Key: "getMore", Value: first.Cursor.ID}, {Key: "collection", Value: f.coll.Name()}, {Key: "batchSize", Value: 1}}

	other, err := f.client.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	defer other.EndSession(f.ctx)
	err = f.db.RunCommand(mongo.NewSessionContext(f.ctx, other), getMore).Err()
	wantCode(t, err, 50738, "getMore from another session")

	if err := f.db.RunCommand(mongo.NewSessionContext(f.ctx, owner), getMore).Err(); err != nil {
		t.Fatalf("getMore from the owner: %v", err)
	}
}

// Cursor ids are not guessable: two cursors opened one after the other
// do not have neighbouring ids.
func TestCursorIDsAreNotSequential(t *testing.T) {
	f := newFixture(t)
	docs := make([]any, 4)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	if _, err := f.coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for range 8 {
		cur, err := f.coll.Find(f.ctx, bson.D{}, options.Find().SetBatchSize(1))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cur.ID())
		defer cur.Close(f.ctx)
	}
	steps := map[int64]bool{}
	for i := 1; i < len(ids); i++ {
		steps[ids[i]-ids[i-1]] = true
	}
	if len(steps) == 1 {
		t.Fatalf("cursor ids %v advance by a constant step: the next one is guessable", ids)
	}
}
