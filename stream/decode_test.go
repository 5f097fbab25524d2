package stream_test

import (
	"reflect"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A client registry without BSON options takes the fast decode path; its
// codecs still decode D, and any other T.
func TestClientRegistryOnFastPath(t *testing.T) {
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeOf(Money{}), bson.ValueDecoderFunc(decodeMoney))
	f := newFixture(t, options.Client().SetRegistry(reg))
	typed, err := stream.Watch[stream.Event[Priced]](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer typed.Close(f.ctx)
	type pricedEvent struct {
		FullDocument Priced `bson:"fullDocument"`
	}
	plain, err := stream.Watch[pricedEvent](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(f.ctx)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "price", Value: "12.34 EUR"}}); err != nil {
		t.Fatal(err)
	}
	want := Money{1234, "EUR"}
	ev, err := typed.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.FullDocument.Price != want {
		t.Errorf("Event[Priced]: price %+v, want %+v (the client's codec)", ev.FullDocument.Price, want)
	}
	pev, err := plain.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pev.FullDocument.Price != want {
		t.Errorf("a plain T: price %+v, want %+v (the client's codec)", pev.FullDocument.Price, want)
	}
}
