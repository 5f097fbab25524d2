package stream_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// checkNoFieldLost checks that ev, decoded from raw, marshals back to raw:
// every field with its BSON type and value, and nothing the server did not
// send.
func checkNoFieldLost(t *testing.T, raw bson.Raw, ev stream.Event[bson.Raw]) {
	t.Helper()
	enc, err := bson.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	if diff := diffBSON(raw, enc); diff != "" {
		t.Errorf("%s event: Marshal(Unmarshal(raw)) differs from raw (-raw +marshalled):\n%s", ev.OperationType, diff)
	}
}

func countFields(doc bson.Raw) int {
	elems, _ := doc.Elements()
	return len(elems)
}

// pair watches the same changes twice: as raw events and as Event[bson.Raw].
type pair struct {
	raw *stream.Stream[bson.Raw]
	ev  *stream.Stream[stream.Event[bson.Raw]]
}

func watchPair(t *testing.T, f *fixture, target stream.Watcher, opts ...options.Lister[options.ChangeStreamOptions]) pair {
	t.Helper()
	raw, err := stream.Watch[bson.Raw](f.ctx, target, nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, target, nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close(f.ctx); _ = ev.Close(f.ctx) })
	return pair{raw, ev}
}

// next returns the next event of both streams, checked against each other.
func (p pair) next(t *testing.T, f *fixture) stream.Event[bson.Raw] {
	t.Helper()
	raw, err := p.raw.Next(f.ctx)
	if err != nil {
		t.Fatalf("raw Next: %v", err)
	}
	ev, err := p.ev.Next(f.ctx)
	if err != nil {
		t.Fatalf("Event Next: %v", err)
	}
	checkNoFieldLost(t, raw, ev)
	return ev
}

func TestEventTypesDecodeWithoutLoss(t *testing.T) {
	f := newFixture(t)
	expanded := options.ChangeStream().SetShowExpandedEvents(true)
	db := watchPair(t, f, f.db, expanded)
	coll := watchPair(t, f, f.coll, expanded)

	if err := f.db.CreateCollection(f.ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 1, Item: "tea", Qty: 2})
	if _, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := f.coll.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Collection("other").InsertOne(f.ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Drop(f.ctx); err != nil {
		t.Fatal(err)
	}

	var collOps []stream.OperationType
	for range 5 {
		ev := coll.next(t, f)
		collOps = append(collOps, ev.OperationType)
		if ev.OperationType == stream.OpInvalidate {
			break
		}
	}
	if want := []stream.OperationType{stream.OpCreate, stream.OpInsert, stream.OpDelete, stream.OpDrop, stream.OpInvalidate}; !slices.Equal(collOps, want) {
		t.Errorf("collection stream: %v, want %v", collOps, want)
	}
	var dbOps []stream.OperationType
	for range 12 {
		ev := db.next(t, f)
		dbOps = append(dbOps, ev.OperationType)
		if ev.OperationType == stream.OpInvalidate {
			break
		}
	}
	for _, op := range []stream.OperationType{stream.OpCreate, stream.OpInsert, stream.OpDelete, stream.OpDrop, stream.OpDropDatabase, stream.OpInvalidate} {
		if !slices.Contains(dbOps, op) {
			t.Errorf("database stream: no %s event in %v", op, dbOps)
		}
	}
	for _, s := range []*stream.Stream[stream.Event[bson.Raw]]{db.ev, coll.ev} {
		if s.Alive() {
			t.Error("Alive() after the invalidate event")
		}
		if _, err := s.Next(f.ctx); !errors.Is(err, stream.ErrInvalidated) {
			t.Errorf("Next after invalidate: %v, want ErrInvalidated", err)
		}
	}
}

// Update, replace and rename events need server commands mongotest gains
// in another branch; the test skips on a server that lacks them.
func TestUpdateReplaceRenameDecodeWithoutLoss(t *testing.T) {
	f := newFixture(t)
	expanded := options.ChangeStream().SetShowExpandedEvents(true).
		SetFullDocument(options.UpdateLookup).SetFullDocumentBeforeChange(options.WhenAvailable)
	p := watchPair(t, f, f.db, expanded)
	f.insert(t, Order{ID: 1, Item: "tea", Qty: 2})
	// The insert creates the collection: a create event comes first.
	if ev := p.next(t, f); ev.OperationType != stream.OpCreate {
		t.Fatalf("first event %s, want create", ev.OperationType)
	}
	if ev := p.next(t, f); ev.OperationType != stream.OpInsert {
		t.Fatalf("second event %s, want insert", ev.OperationType)
	}
	_, err := f.coll.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: 1}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 3}}}, {Key: "$unset", Value: bson.D{{Key: "item", Value: ""}}}})
	skipIfUnsupported(t, f, err)
	if ev := p.next(t, f); ev.OperationType != stream.OpUpdate || ev.UpdateDescription == nil ||
		!slices.Equal(ev.UpdateDescription.RemovedFields, []string{"item"}) {
		t.Errorf("update event %+v", ev)
	}
	_, err = f.coll.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "item", Value: "jam"}})
	skipIfUnsupported(t, f, err)
	if ev := p.next(t, f); ev.OperationType != stream.OpReplace {
		t.Errorf("replace event %+v", ev)
	}
	err = f.client.Database("admin").RunCommand(f.ctx, bson.D{
		{Key: "renameCollection", Value: f.db.Name() + ".orders"},
		{Key: "to", Value: f.db.Name() + ".archive"},
	}).Err()
	skipIfUnsupported(t, f, err)
	if ev := p.next(t, f); ev.OperationType != stream.OpRename || ev.To == nil || ev.To.Coll != "archive" {
		t.Errorf("rename event %+v", ev)
	}
}

func skipIfUnsupported(t *testing.T, f *fixture, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ce mongo.CommandError
	if f.srv != nil && errors.As(err, &ce) && ce.Code == 59 { // CommandNotFound
		t.Skipf("mongotest in this tree lacks the command: %v", err)
	}
	t.Fatal(err)
}
