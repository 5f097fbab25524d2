package stream_test

import (
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func mustRaw(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventKeepsUnknownFields(t *testing.T) {
	raw := mustRaw(t, bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "8264"}}},
		{Key: "operationType", Value: "reshardBlocking"},
		{Key: "futureField", Value: bson.A{1, "two"}},
		{Key: "updateDescription", Value: bson.D{
			{Key: "updatedFields", Value: bson.D{{Key: "a", Value: 1}}},
			{Key: "removedFields", Value: bson.A{}},
			{Key: "truncatedArrays", Value: bson.A{}},
			{Key: "futureDetail", Value: true},
		}},
		{Key: "txnNumber", Value: int64(9)},
		{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: int32(1)}, {Key: "of", Value: int32(2)}}},
	})
	ev, err := stream.DecodeEvent[bson.Raw](raw)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OperationType != "reshardBlocking" || ev.Extra.Lookup("futureField").Type != bson.TypeArray {
		t.Errorf("unknown type or field lost: %q, Extra %v", ev.OperationType, ev.Extra)
	}
	if *ev.TxnNumber != 9 || *ev.SplitEvent != (stream.SplitEvent{Fragment: 1, Of: 2}) {
		t.Errorf("txnNumber %v, splitEvent %v", *ev.TxnNumber, *ev.SplitEvent)
	}
	checkNoFieldLost(t, raw, ev)
}

func TestEventRejectsWrongTypes(t *testing.T) {
	tests := []struct {
		name  string
		field bson.E
	}{
		{"_id not a document", bson.E{Key: "_id", Value: "x"}},
		{"operationType not a string", bson.E{Key: "operationType", Value: 1}},
		{"clusterTime not a timestamp", bson.E{Key: "clusterTime", Value: 1}},
		{"wallTime not a date", bson.E{Key: "wallTime", Value: "now"}},
		{"ns not a document", bson.E{Key: "ns", Value: "db.coll"}},
		{"fullDocument not a document", bson.E{Key: "fullDocument", Value: 3}},
		{"removedFields not strings", bson.E{Key: "updateDescription", Value: bson.D{{Key: "removedFields", Value: bson.A{1}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := stream.DecodeEvent[bson.Raw](mustRaw(t, bson.D{tt.field})); err == nil {
				t.Error("decoded without error")
			}
		})
	}
	if _, err := stream.DecodeEvent[bson.Raw](bson.Raw{1, 2}); err == nil {
		t.Error("decoded a truncated document")
	}
}
