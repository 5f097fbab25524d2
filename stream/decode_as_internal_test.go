package stream

import (
	"context"
	"reflect"
	"testing"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DecodeAs reads the registry and BSON options out of the driver's
// client, database and collection. If a driver upgrade moves them,
// DecodeAs fails with an error and this test fails, so the loss is
// noticed.
func TestDecodeAsUsesTheRegistry(t *testing.T) {
	srv := mongotest.New(t, nil)
	clientReg, dbReg, collReg := bson.NewRegistry(), bson.NewRegistry(), bson.NewRegistry()
	bo := &options.BSONOptions{UseJSONStructTags: true}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetRegistry(clientReg).SetBSONOptions(bo))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	db := client.Database("db", options.Database().SetRegistry(dbReg))
	coll := db.Collection("c", options.Collection().SetRegistry(collReg))
	tests := []struct {
		name   string
		target Watcher
		reg    *bson.Registry
	}{
		{"client", client, clientReg},
		{"database", db, dbReg},
		{"collection", coll, collReg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := documentDecoderOf(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if d.reg != tt.reg {
				t.Error("the registry found is not the target's")
			}
			if d.opts == nil || !d.opts.UseJSONStructTags {
				t.Errorf("BSON options %+v, want the client's", d.opts)
			}
		})
	}
}

// retype carries every field of the event over. A field added to Event
// must be added to retype, and to the document below.
func TestRetypeCarriesEveryField(t *testing.T) {
	doc, err := bson.Marshal(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}},
		{Key: "operationType", Value: "update"},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 2}},
		{Key: "collectionUUID", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}},
		{Key: "wallTime", Value: bson.DateTime(1000)},
		{Key: "txnNumber", Value: int64(5)},
		{Key: "lsid", Value: bson.D{{Key: "id", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}}},
		{Key: "ns", Value: bson.D{{Key: "db", Value: "a"}, {Key: "coll", Value: "b"}}},
		{Key: "to", Value: bson.D{{Key: "db", Value: "a"}, {Key: "coll", Value: "c"}}},
		{Key: "nsType", Value: "collection"},
		{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "updateDescription", Value: bson.D{{Key: "updatedFields", Value: bson.D{}}}},
		{Key: "fullDocument", Value: bson.D{{Key: "x", Value: 1}}},
		{Key: "fullDocumentBeforeChange", Value: bson.D{{Key: "x", Value: 0}}},
		{Key: "operationDescription", Value: bson.D{{Key: "o", Value: 1}}},
		{Key: "stateBeforeChange", Value: bson.D{{Key: "s", Value: 1}}},
		{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: int32(1)}, {Key: "of", Value: int32(1)}}},
		{Key: "future", Value: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev Event[bson.Raw]
	if err := bson.Unmarshal(doc, &ev); err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(ev)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("the test document leaves Event.%s zero: add its field", v.Type().Field(i).Name)
		}
	}
	out, err := retype[bson.D](ev, func(doc []byte, v any) error { return bson.Unmarshal(doc, v) })
	if err != nil {
		t.Fatal(err)
	}
	ov := reflect.ValueOf(out)
	for i := range ov.NumField() {
		name := ov.Type().Field(i).Name
		if ov.Field(i).IsZero() {
			t.Errorf("retype left Event.%s zero", name)
		}
		if name != "FullDocument" && name != "FullDocumentBeforeChange" && !reflect.DeepEqual(ov.Field(i).Interface(), v.Field(i).Interface()) {
			t.Errorf("retype changed Event.%s", name)
		}
	}
}
