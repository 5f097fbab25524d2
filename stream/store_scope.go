package stream

import (
	"fmt"
	"reflect"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// collectionStore is a TokenStore that keeps its checkpoints in a MongoDB
// collection and says which: CollectionStore, or a wrapper of one that
// forwards its Collection method.
type collectionStore interface {
	Collection() *mongo.Collection
}

// scopeStore keeps a stream from watching its own checkpoint saves. When
// store keeps checkpoints in a collection that the stream's target
// includes, each save would be a change event, and each event a save:
// the stream would feed on itself. For a database or deployment stream
// that includes the store's collection, it returns pipeline with a first
// stage that drops the events of that collection on the server; for a
// stream on the store's collection itself, it returns an error. Any other
// target or store leaves the pipeline as it is.
func scopeStore(target Watcher, pipeline any, store TokenStore) (any, error) {
	cs, ok := store.(collectionStore)
	if !ok || isNilPointer(cs) {
		return pipeline, nil
	}
	sc := cs.Collection()
	if sc == nil {
		return pipeline, nil
	}
	db, coll := sc.Database().Name(), sc.Name()
	switch t := target.(type) {
	case *mongo.Collection:
		if t.Database().Name() == db && t.Name() == coll {
			return nil, fmt.Errorf("changestream: the stream watches %s.%s, the collection its Options.Store keeps checkpoints in: each save would be an event; keep the checkpoints in another collection", db, coll)
		}
		return pipeline, nil
	case *mongo.Database:
		if t.Name() != db {
			return pipeline, nil
		}
	case *mongo.Client:
	default:
		return pipeline, nil
	}
	// Events without ns (invalidate, dropDatabase's ns has no coll) pass.
	stage := bson.D{{Key: "$match", Value: bson.D{{Key: "$nor", Value: bson.A{
		bson.D{{Key: "ns.db", Value: db}, {Key: "ns.coll", Value: coll}},
	}}}}}
	return prependStage(pipeline, stage)
}

// prependStage returns pipeline, a slice of stages as the driver's Watch
// takes it, with stage before its first stage. The stages are passed on as
// they are, so the client's registry still encodes them.
func prependStage(pipeline any, stage bson.D) (any, error) {
	stages, err := pipelineStages(pipeline, 1)
	if err != nil {
		return nil, err
	}
	return append([]any{stage}, stages...), nil
}

// pipelineStages returns the stages of pipeline, a slice of stages as the
// driver's Watch takes it, in a new slice with room for extra more.
func pipelineStages(pipeline any, extra int) ([]any, error) {
	if pipeline == nil {
		return make([]any, 0, extra), nil
	}
	switch pipeline.(type) {
	case bson.D, bson.Raw, bsoncore.Document, bsoncore.Array, bson.RawArray:
		return nil, fmt.Errorf("changestream: the pipeline is a %T; a change stream takes a slice of stages such as mongo.Pipeline or bson.A", pipeline)
	}
	v := reflect.ValueOf(pipeline)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("changestream: the pipeline is a %T; want a slice of stages such as mongo.Pipeline or bson.A", pipeline)
	}
	out := make([]any, 0, v.Len()+extra)
	for i := range v.Len() {
		out = append(out, v.Index(i).Interface())
	}
	return out, nil
}
