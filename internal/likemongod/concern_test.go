package likemongod_test

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// A single node cannot acknowledge w: 2: mongod applies the write and
// answers UnsatisfiableWriteConcern (100) as a write concern error.
func TestWriteConcernUnsatisfiable(t *testing.T) {
	f := newFixture(t, options.Client().SetRetryWrites(false))
	coll := f.coll.Database().Collection(f.coll.Name(), options.Collection().SetWriteConcern(&writeconcern.WriteConcern{W: 2}))
	_, err := coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}})
	var we mongo.WriteException
	if !errors.As(err, &we) || we.WriteConcernError == nil || we.WriteConcernError.Code != 100 {
		t.Fatalf("insert with w: 2: got %v, want write concern error 100 UnsatisfiableWriteConcern", err)
	}
	if n, err := f.coll.CountDocuments(f.ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1 (the write is applied)", n, err)
	}
	wc1 := f.coll.Database().Collection(f.coll.Name(), options.Collection().SetWriteConcern(&writeconcern.WriteConcern{W: 1}))
	if _, err := wc1.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatalf("insert with w: 1: %v", err)
	}
}

// A change stream reads majority-committed data only: mongod refuses
// another read concern level with InvalidOptions (72).
func TestChangeStreamReadConcern(t *testing.T) {
	f := newFixture(t)
	for _, level := range []string{"local", "linearizable", "available"} {
		coll := f.coll.Database().Collection(f.coll.Name(), options.Collection().SetReadConcern(&readconcern.ReadConcern{Level: level}))
		cs, err := coll.Watch(f.ctx, mongo.Pipeline{})
		if err == nil {
			_ = cs.Close(f.ctx)
		}
		wantCode(t, err, 72, "watch with readConcern "+level)
	}
	coll := f.coll.Database().Collection(f.coll.Name(), options.Collection().SetReadConcern(readconcern.Majority()))
	cs, err := coll.Watch(f.ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatalf("watch with readConcern majority: %v", err)
	}
	_ = cs.Close(f.ctx)
}
