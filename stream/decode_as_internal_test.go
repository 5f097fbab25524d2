package stream

import (
	"context"
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
