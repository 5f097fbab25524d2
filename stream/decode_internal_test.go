package stream

import (
	"context"
	"testing"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The fast decode path reads the client's registry out of the driver's
// stream. If a driver upgrade moves it, decoding still works (through the
// driver's Decode) but this test fails, so the loss is noticed.
func TestCodecUsesTheClientsRegistry(t *testing.T) {
	srv := mongotest.New(t, nil)
	custom := bson.NewRegistry()
	tests := []struct {
		name     string
		opts     *options.ClientOptions
		wantFast bool
		wantReg  *bson.Registry // nil: any
	}{
		{"default registry", options.Client(), true, nil},
		{"client registry", options.Client().SetRegistry(custom), true, custom},
		{"client BSON options", options.Client().SetBSONOptions(&options.BSONOptions{UseJSONStructTags: true}), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			client, err := mongo.Connect(tt.opts.ApplyURI(srv.URI()))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(ctx)
			s, err := Watch[Event[bson.Raw]](ctx, client.Database("db").Collection("c"), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			c := codecOf(s.cs)
			if (c.reg != nil) != tt.wantFast {
				t.Fatalf("fast path %v, want %v", c.reg != nil, tt.wantFast)
			}
			if tt.wantReg != nil && c.reg != tt.wantReg {
				t.Error("the registry found is not the client's")
			}
		})
	}
}
