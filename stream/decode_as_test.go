package stream_test

import (
	"context"
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

// One database stream of Event[bson.Raw] decodes each collection's
// documents into its own type, with the client's registry (a custom
// codec) and BSON options; a document that does not fit is a
// *DecodeError naming the event.
func TestDecodeAsPerNamespace(t *testing.T) {
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeOf(Money{}), bson.ValueDecoderFunc(decodeMoney))
	f := newFixture(t, options.Client().SetRegistry(reg).SetBSONOptions(&options.BSONOptions{UseJSONStructTags: true}))
	s, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, f.db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)

	type tagged struct {
		Note string `json:"note"`
	}
	prices, notes := f.db.Collection("prices"), f.db.Collection("notes")
	if _, err := prices.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "price", Value: "12.34 EUR"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := notes.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 2}, {Key: "note", Value: "hello"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := prices.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 3}, {Key: "price", Value: "twelve"}}); err != nil {
		t.Fatal(err)
	}

	ev := nextEvent(t, f.ctx, s)
	p, err := stream.DecodeAs[Priced](s, ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Money{1234, "EUR"}); p.FullDocument == nil || p.FullDocument.Price != want {
		t.Errorf("prices: %+v, want price %+v (the client's codec)", p.FullDocument, want)
	}
	if !p.ID.Equal(ev.ID) || p.NS != ev.NS || p.OperationType != stream.OpInsert {
		t.Errorf("envelope not carried over: %+v", p)
	}

	ev = nextEvent(t, f.ctx, s)
	n, err := stream.DecodeAs[tagged](s, ev)
	if err != nil {
		t.Fatal(err)
	}
	if n.FullDocument.Note != "hello" {
		t.Errorf("notes: %+v: the client's UseJSONStructTags was not applied", n.FullDocument)
	}

	ev = nextEvent(t, f.ctx, s)
	_, err = stream.DecodeAs[Priced](s, ev)
	var de *stream.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("DecodeAs of a bad price: %v, want a *DecodeError", err)
	}
	checkDecodeError(t, de, stream.OpInsert, stream.Namespace{DB: f.db.Name(), Coll: "prices"}, bson.D{{Key: "_id", Value: int32(3)}})
	if !de.Token.Equal(ev.ID) || !strings.Contains(de.Err.Error(), "twelve") {
		t.Errorf("DecodeError token %v, cause %v", de.Token, de.Err)
	}
	var back stream.Event[bson.Raw]
	if err := bson.Unmarshal(de.Raw, &back); err != nil {
		t.Fatal(err)
	}
	eventsEqual(t, "DecodeError.Raw", ev, back)
}

func nextEvent(t *testing.T, ctx context.Context, s *stream.Stream[stream.Event[bson.Raw]]) stream.Event[bson.Raw] {
	t.Helper()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// DecodeAs carries every field of the event over, and may run while
// another goroutine waits in Next.
func TestDecodeAsKeepsTheEnvelope(t *testing.T) {
	f := newFixture(t)
	s, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, f.coll, nil, nil,
		options.ChangeStream().SetShowExpandedEvents(true).SetFullDocument(options.UpdateLookup))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1, Item: "tea", Qty: 2})
	if _, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 3}}}}); err != nil {
		t.Fatal(err)
	}
	var ev stream.Event[bson.Raw]
	for ev.OperationType != stream.OpUpdate {
		ev = nextEvent(t, f.ctx, s)
	}

	// Another goroutine waits in Next while DecodeAs runs.
	done := make(chan error, 1)
	go func() {
		_, err := s.Next(f.ctx)
		done <- err
	}()
	typed, err := stream.DecodeAs[Order](s, ev)
	if err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 2})
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if typed.FullDocument == nil || *typed.FullDocument != (Order{ID: 1, Item: "tea", Qty: 3}) {
		t.Errorf("FullDocument = %+v", typed.FullDocument)
	}
	// Every field but the images is ev's: the two marshal to the same
	// document.
	a, err := bson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bson.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := diffBSON(a, b); diff != "" {
		t.Errorf("DecodeAs changed the event (-Event[bson.Raw] +Event[Order]):\n%s", diff)
	}
}

// watcherFunc is a Watcher that is not one of the driver's types.
type watcherFunc func(ctx context.Context, pipeline any, opts ...options.Lister[options.ChangeStreamOptions]) (*mongo.ChangeStream, error)

func (w watcherFunc) Watch(ctx context.Context, pipeline any, opts ...options.Lister[options.ChangeStreamOptions]) (*mongo.ChangeStream, error) {
	return w(ctx, pipeline, opts...)
}

func TestDecodeAsNeedsADriverTarget(t *testing.T) {
	f := newFixture(t)
	s, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, watcherFunc(f.coll.Watch), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1})
	ev := nextEvent(t, f.ctx, s)
	_, err = stream.DecodeAs[Order](s, ev)
	var de *stream.DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "*mongo.Collection") {
		t.Errorf("DecodeAs on a stream of a custom Watcher: %v, want a *DecodeError saying what it needs", err)
	}
}

// A registry with RegisterEventCodec stores events with D's own codecs
// both ways, as a Stream decodes them: an audit log in a collection.
func TestEventCodecInACollection(t *testing.T) {
	reg := bson.NewRegistry()
	reg.RegisterTypeDecoder(reflect.TypeOf(Money{}), bson.ValueDecoderFunc(decodeMoney))
	reg.RegisterTypeEncoder(reflect.TypeOf(Money{}), bson.ValueEncoderFunc(encodeMoney))
	stream.RegisterEventCodec[Priced](reg)
	f := newFixture(t, options.Client().SetRegistry(reg))
	s, err := stream.Watch[stream.Event[Priced]](f.ctx, f.coll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "price", Value: "12.34 EUR"}}); err != nil {
		t.Fatal(err)
	}
	ev, err := s.Next(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	audit := f.db.Collection("audit")
	if _, err := audit.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 1}, {Key: "event", Value: ev}}); err != nil {
		t.Fatal(err)
	}
	// As stored: the price in the codec's string form, every field there.
	var stored bson.Raw
	if err := audit.FindOne(f.ctx, bson.D{}).Decode(&stored); err != nil {
		t.Fatal(err)
	}
	if got := stored.Lookup("event", "fullDocument", "price").StringValue(); got != "12.34 EUR" {
		t.Errorf("stored price %q, want the codec's \"12.34 EUR\"", got)
	}
	for _, k := range []string{"_id", "operationType", "clusterTime", "wallTime", "ns", "documentKey", "fullDocument"} {
		if stored.Lookup("event", k).Type == 0 {
			t.Errorf("stored event has no %s: %v", k, stored)
		}
	}
	var back struct {
		Event stream.Event[Priced] `bson:"event"`
	}
	if err := audit.FindOne(f.ctx, bson.D{}).Decode(&back); err != nil {
		t.Fatal(err)
	}
	eventsEqual(t, "stored and read back", ev, back.Event)
}

func encodeMoney(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
	m := v.Interface().(Money)
	return vw.WriteString(fmt.Sprintf("%d.%02d %s", m.Cents/100, m.Cents%100, m.Currency))
}
