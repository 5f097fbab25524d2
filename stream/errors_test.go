package stream_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// checkServerError asserts err matches sentinel and still exposes the
// server's error with code.
func checkServerError(t *testing.T, err, sentinel error, code int) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not match %v", err, sentinel)
	}
	var se mongo.ServerError
	if !errors.As(err, &se) || !se.HasErrorCode(code) {
		t.Errorf("error %v: the server error %d is not reachable with errors.As", err, code)
	}
}

func TestInvalidateTokenErrors(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1})
	if err := f.coll.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	var inv stream.Event[Order]
	for ev, err := range s.All(f.ctx) {
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidated) {
				t.Fatalf("loop ended with %v, want ErrInvalidated", err)
			}
			break
		}
		inv = ev
	}
	if inv.OperationType != stream.OpInvalidate {
		t.Fatalf("last event %q, want invalidate", inv.OperationType)
	}
	_, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, nil, options.ChangeStream().SetResumeAfter(inv.ID.Raw()))
	checkServerError(t, err, stream.ErrInvalidToken, 260)

	// startAfter goes on after the invalidate.
	s2 := watchOrders(t, f, options.ChangeStream().SetStartAfter(inv.ID.Raw()))
	f.insert(t, Order{ID: 2})
	if ev := nextOrder(t, f.ctx, s2); ev.FullDocument.ID != 2 {
		t.Fatalf("after startAfter: order %d, want 2", ev.FullDocument.ID)
	}
}

func TestHistoryLost(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "TruncateHistory")
	evs := threeEvents(t, f)
	f.srv.TruncateHistory()
	_, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, nil, options.ChangeStream().SetResumeAfter(evs[0].ID.Raw()))
	checkServerError(t, err, stream.ErrHistoryLost, 286)
}

func TestEventTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MiB document")
	}
	f := newFixture(t)
	s := watchOrders(t, f)
	big := bson.D{{Key: "_id", Value: 1}, {Key: "pad", Value: strings.Repeat("x", 16*1024*1024-100)}}
	if _, err := f.coll.InsertOne(f.ctx, big); err != nil {
		t.Fatal(err)
	}
	_, err := s.Next(f.ctx)
	checkServerError(t, err, stream.ErrEventTooLarge, 10334)
	if s.Alive() {
		t.Error("Alive() after a fatal error")
	}
}

// Money is stored as a string like "12.34 EUR"; only a codec registered on
// the client knows how to read it.
type Money struct {
	Cents    int64
	Currency string
}

type Priced struct {
	ID    int   `bson:"_id"`
	Price Money `bson:"price"`
}

func decodeMoney(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
	s, err := vr.ReadString()
	if err != nil {
		return err
	}
	var units, cents int64
	var cur string
	if _, err := fmt.Sscanf(s, "%d.%d %s", &units, &cents, &cur); err != nil {
		return fmt.Errorf("money %q: %w", s, err)
	}
	v.Set(reflect.ValueOf(Money{Cents: units*100 + cents, Currency: cur}))
	return nil
}

func TestClientCodecsAndBSONOptionsApply(t *testing.T) {
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeOf(Money{}), bson.ValueDecoderFunc(decodeMoney))
	f := newFixture(t, options.Client().SetRegistry(reg).SetBSONOptions(&options.BSONOptions{UseJSONStructTags: true}))

	type jsonTagged struct {
		Item string `json:"item"`
	}
	priced, err := stream.Watch[stream.Event[Priced]](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer priced.Close(f.ctx)
	tagged, err := stream.Watch[stream.Event[jsonTagged]](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tagged.Close(f.ctx)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "item", Value: "tea"}, {Key: "price", Value: "12.34 EUR"}}); err != nil {
		t.Fatal(err)
	}
	ev, err := priced.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Money{1234, "EUR"}); ev.FullDocument.Price != want {
		t.Errorf("price = %+v, want %+v (the client's codec)", ev.FullDocument.Price, want)
	}
	tev, err := tagged.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tev.FullDocument.Item != "tea" {
		t.Errorf("item = %q: the client's UseJSONStructTags was not applied", tev.FullDocument.Item)
	}
}
