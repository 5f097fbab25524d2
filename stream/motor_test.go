package stream_test

// Each method and watch() parameter of Motor's MotorChangeStream, in its Go
// form, shown to take effect.

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMotorParity(t *testing.T) {
	tests := []struct {
		motor string // Motor's name
		test  func(t *testing.T, f *fixture)
	}{
		{"next", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f)
			f.insert(t, Order{ID: 1})
			if ev, err := s.Next(f.ctx); err != nil || ev.FullDocument.ID != 1 {
				t.Fatalf("Next = %+v, %v", ev, err)
			}
		}},
		{"try_next", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f, options.ChangeStream().SetMaxAwaitTime(20*time.Millisecond))
			if _, ok, err := s.TryNext(f.ctx); ok || err != nil {
				t.Fatalf("TryNext on a quiet stream = %v, %v", ok, err)
			}
			f.insert(t, Order{ID: 1})
			if ev, ok, err := s.TryNext(f.ctx); !ok || err != nil || ev.FullDocument.ID != 1 {
				t.Fatalf("TryNext = %+v, %v, %v", ev, ok, err)
			}
		}},
		{"alive", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f)
			if !s.Alive() {
				t.Fatal("a new stream is not alive")
			}
			_ = s.Close(f.ctx)
			if s.Alive() {
				t.Fatal("a closed stream is alive")
			}
		}},
		{"resume_token", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f, options.ChangeStream().SetBatchSize(1))
			f.insert(t, Order{ID: 1}, Order{ID: 2})
			ev := nextOrder(t, f.ctx, s)
			if !s.ResumeToken().Equal(ev.ID) {
				t.Fatalf("ResumeToken %v, want the event's _id %v", s.ResumeToken(), ev.ID)
			}
		}},
		{"close", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f)
			if err := s.Close(f.ctx); err != nil {
				t.Fatal(err)
			}
			if len(f.mon.commands("killCursors")) != 1 {
				t.Error("Close sent no killCursors")
			}
		}},
		{"async for", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f)
			f.insert(t, Order{ID: 1}, Order{ID: 2})
			var ids []int
			for ev, err := range s.All(f.ctx) {
				if err != nil {
					t.Fatal(err)
				}
				if ids = append(ids, ev.FullDocument.ID); len(ids) == 2 {
					break
				}
			}
			if ids[0] != 1 || ids[1] != 2 {
				t.Fatalf("loop saw %v", ids)
			}
		}},
		{"pipeline", func(t *testing.T, f *fixture) {
			pipeline := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "fullDocument.item", Value: "jam"}}}}}
			s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, pipeline, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			f.insert(t, Order{ID: 1, Item: "tea"}, Order{ID: 2, Item: "jam"})
			if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 2 {
				t.Fatalf("the $match stage let order %d through", ev.FullDocument.ID)
			}
		}},
		{"full_document", func(t *testing.T, f *fixture) {
			watchOrders(t, f, options.ChangeStream().SetFullDocument(options.UpdateLookup))
			if v := stageOf(t, f).Lookup("fullDocument").StringValue(); v != "updateLookup" {
				t.Fatalf("$changeStream.fullDocument = %q", v)
			}
		}},
		{"full_document_before_change", func(t *testing.T, f *fixture) {
			s, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, nil,
				options.ChangeStream().SetFullDocumentBeforeChange(options.WhenAvailable))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			f.insert(t, Order{ID: 1})
			if _, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
				t.Fatal(err)
			}
			_, _ = s.Next(f.ctx)
			del, err := s.Next(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The collection records no pre-images: whenAvailable gives null.
			if v := del.Lookup("fullDocumentBeforeChange"); v.Type != bson.TypeNull {
				t.Fatalf("delete event's fullDocumentBeforeChange = %v, want null", v)
			}
		}},
		{"resume_after", func(t *testing.T, f *fixture) {
			evs := threeEvents(t, f)
			s := watchOrders(t, f, options.ChangeStream().SetResumeAfter(evs[1].ID.Raw()))
			if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 3 {
				t.Fatalf("resumed at order %d, want 3", ev.FullDocument.ID)
			}
		}},
		{"start_after", func(t *testing.T, f *fixture) {
			evs := threeEvents(t, f)
			s := watchOrders(t, f, options.ChangeStream().SetStartAfter(evs[0].ID.Raw()))
			if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 2 {
				t.Fatalf("started at order %d, want 2", ev.FullDocument.ID)
			}
		}},
		{"start_at_operation_time", func(t *testing.T, f *fixture) {
			evs := threeEvents(t, f)
			s := watchOrders(t, f, options.ChangeStream().SetStartAtOperationTime(&evs[2].ClusterTime))
			if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 3 {
				t.Fatalf("started at order %d, want 3", ev.FullDocument.ID)
			}
		}},
		{"max_await_time_ms", func(t *testing.T, f *fixture) {
			s := watchOrders(t, f, options.ChangeStream().SetMaxAwaitTime(40*time.Millisecond))
			if _, _, err := s.TryNext(f.ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.TryNext(f.ctx); err != nil {
				t.Fatal(err)
			}
			gm := f.mon.commands("getMore")
			if len(gm) == 0 || gm[0].Lookup("maxTimeMS").AsInt64() != 40 {
				t.Fatalf("getMore without maxTimeMS 40: %v", gm)
			}
		}},
		{"batch_size", func(t *testing.T, f *fixture) {
			evs := threeEvents(t, f)
			watchOrders(t, f, options.ChangeStream().SetBatchSize(2).SetStartAtOperationTime(&evs[0].ClusterTime))
			replies := f.mon.repliesTo("aggregate")
			batch, _ := replies[len(replies)-1].Lookup("cursor", "firstBatch").ArrayOK()
			if n := countFields(bson.Raw(batch)); n != 2 {
				t.Fatalf("first batch of %d events, want 2", n)
			}
		}},
		{"collation", func(t *testing.T, f *fixture) {
			watchOrders(t, f, options.ChangeStream().SetCollation(options.Collation{Locale: "en", Strength: 2}))
			aggs := f.mon.commands("aggregate")
			if aggs[len(aggs)-1].Lookup("collation", "locale").StringValue() != "en" {
				t.Fatalf("aggregate without the collation: %v", aggs[len(aggs)-1])
			}
		}},
		{"comment", func(t *testing.T, f *fixture) {
			watchOrders(t, f, options.ChangeStream().SetComment("orders feed"))
			aggs := f.mon.commands("aggregate")
			if aggs[len(aggs)-1].Lookup("comment").StringValue() != "orders feed" {
				t.Fatalf("aggregate without the comment: %v", aggs[len(aggs)-1])
			}
		}},
		{"session", func(t *testing.T, f *fixture) {
			sess, err := f.client.StartSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.EndSession(context.Background())
			s, err := stream.Watch[stream.Event[Order]](mongo.NewSessionContext(f.ctx, sess), f.coll, nil, nil,
				options.ChangeStream().SetMaxAwaitTime(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			if _, _, err := s.TryNext(f.ctx); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.TryNext(f.ctx); err != nil {
				t.Fatal(err)
			}
			_, want, _ := sess.ID().Lookup("id").BinaryOK()
			for _, name := range []string{"aggregate", "getMore"} {
				cmds := f.mon.commands(name)
				if _, got, _ := cmds[len(cmds)-1].Lookup("lsid", "id").BinaryOK(); len(want) == 0 || !bytes.Equal(got, want) {
					t.Errorf("%s lsid %x, want the session's %x", name, got, want)
				}
			}
		}},
		{"show_expanded_events", func(t *testing.T, f *fixture) {
			s, err := stream.Watch[stream.Event[Order]](f.ctx, f.db, nil, nil, options.ChangeStream().SetShowExpandedEvents(true))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			if err := f.db.CreateCollection(f.ctx, "fresh"); err != nil {
				t.Fatal(err)
			}
			if ev := nextOrder(t, f.ctx, s); ev.OperationType != stream.OpCreate || ev.CollectionUUID.Data == nil {
				t.Fatalf("got %+v, want a create event with collectionUUID", ev)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.motor, func(t *testing.T) { tt.test(t, newFixture(t)) })
	}
}

// stageOf returns the $changeStream stage of the latest aggregate.
func stageOf(t *testing.T, f *fixture) bson.Raw {
	t.Helper()
	aggs := f.mon.commands("aggregate")
	return changeStreamStage(t, aggs[len(aggs)-1])
}
