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
		wantPlan bool           // decode plans allowed
	}{
		{"default registry", options.Client(), true, nil, true},
		{"client registry", options.Client().SetRegistry(custom), true, custom, true},
		{"client BSON options", options.Client().SetBSONOptions(&options.BSONOptions{UseJSONStructTags: true}), false, nil, false},
		{"local time zone", options.Client().SetBSONOptions(&options.BSONOptions{UseLocalTimeZone: true}), false, nil, false},
		{"options plans allow", options.Client().SetBSONOptions(&options.BSONOptions{ZeroStructs: true, AllowTruncatingDoubles: true}), false, nil, true},
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
			if (c.planReg != nil) != tt.wantPlan {
				t.Errorf("decode plans %v, want %v", c.planReg != nil, tt.wantPlan)
			}
		})
	}
}

type planOrder struct {
	ID    int       `bson:"_id"`
	Item  string    `bson:"item"`
	Qty   int       `bson:"qty"`
	Lines []float64 `bson:"lines"`
}

type planMoney struct {
	Cents int64
}

type planPriced struct {
	ID    int       `bson:"_id"`
	Price planMoney `bson:"price"`
}

// A plain D is decoded by its compiled plan; a D with a field the client's
// registry has a decoder for goes to the registry, whose decoder runs; a
// document the plan declines (binary into a string) is decoded by the registry
// as before, with the registry's result.
func TestDecodePlanIsUsedWhereItCan(t *testing.T) {
	srv := mongotest.New(t, nil)
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeFor[planMoney](), bson.ValueDecoderFunc(
		func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
			s, err := vr.ReadString()
			v.Set(reflect.ValueOf(planMoney{Cents: int64(len(s))}))
			return err
		}))
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().SetRegistry(reg).ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("db").Collection("plan")
	orders, err := Watch[Event[planOrder]](ctx, coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer orders.Close(ctx)
	priced, err := Watch[Event[planPriced]](ctx, coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer priced.Close(ctx)
	docs := []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "item", Value: "a"}, {Key: "qty", Value: int64(2)}, {Key: "lines", Value: bson.A{1, 2.5}}, {Key: "price", Value: "abc"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "item", Value: bson.Binary{Data: []byte("c")}}, {Key: "price", Value: "abcd"}},
	}
	for _, d := range docs {
		if _, err := coll.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []planOrder{{ID: 1, Item: "a", Qty: 2, Lines: []float64{1, 2.5}}, {ID: 2, Item: "c"}} {
		ev, err := orders.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*ev.FullDocument, want) {
			t.Errorf("order %d: %+v, want %+v", i, *ev.FullDocument, want)
		}
		if orders.codec.planned.plan == nil {
			t.Error("Event[planOrder] is not decoded by a plan")
		}
	}
	for i, want := range []int64{3, 4} {
		ev, err := priced.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.FullDocument.Price.Cents != want {
			t.Errorf("priced %d: cents %d, want %d from the registry's decoder", i, ev.FullDocument.Price.Cents, want)
		}
		if priced.codec.planned.plan != nil || priced.codec.planned.ptrType == nil {
			t.Error("Event[planPriced] has a plan although the registry decodes planMoney")
		}
	}
}
