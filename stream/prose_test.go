package stream_test

// The change streams specification's prose tests, through Stream. Numbers
// follow ../shared/conformance/spec/README.md; 1 is in stream_test.go.

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Prose test 2: an event without its resume token is an error, never a
// skipped event. A real server (and mongotest) raises
// ChangeStreamFatalError itself when a stage removes _id.
func TestProse2MissingResumeTokenIsAnError(t *testing.T) {
	f := newFixture(t)
	pipeline := mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "_id", Value: 0}}}}}
	s, err := stream.Watch[bson.Raw](f.ctx, f.coll, pipeline, nil)
	if err != nil {
		var ce mongo.CommandError
		if f.srv != nil && errors.As(err, &ce) && ce.Code == 40324 {
			t.Skipf("mongotest in this tree lacks $project: %v", err)
		}
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	ev, err := s.Next(f.ctx)
	if err == nil {
		t.Fatalf("Next returned an event without _id: %v", ev)
	}
	if !errors.Is(err, stream.ErrFatal) {
		t.Errorf("error %v does not match ErrFatal", err)
	}
	var se mongo.ServerError
	if !errors.As(err, &se) || !se.HasErrorCode(280) {
		t.Errorf("error %v: want the server's ChangeStreamFatalError reachable with errors.As", err)
	}
	if s.Alive() {
		t.Error("Alive() after a fatal error")
	}
	if _, err2 := s.Next(f.ctx); !errors.Is(err2, stream.ErrFatal) {
		t.Errorf("second Next: %v, want the same fatal error", err2)
	}
}

// Prose test 3: after a resumable error the stream resumes once, with the
// initial pipeline and options plus the resume token.
func TestProse3ResumesWithInitialPipeline(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "DropConnections")
	pipeline := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "operationType", Value: "insert"}}}}}
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, pipeline, nil,
		options.ChangeStream().SetFullDocument(options.UpdateLookup))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	f.insert(t, Order{ID: 1})
	nextOrder(t, f.ctx, s)
	tok := s.ResumeToken()
	// Drop the connection of the getMore a blocked Next waits on.
	type result struct {
		ev  stream.Event[Order]
		err error
	}
	res := make(chan result, 1)
	getMores := len(f.mon.commands("getMore"))
	go func() {
		ev, err := s.Next(f.ctx)
		res <- result{ev, err}
	}()
	f.mon.waitStarted(t, f.ctx, "getMore", getMores+1)
	f.srv.DropConnections()
	f.insert(t, Order{ID: 2})
	if r := <-res; r.err != nil || r.ev.FullDocument.ID != 2 {
		t.Fatalf("after the resume: %+v, %v; want order 2", r.ev.FullDocument, r.err)
	}
	aggs := f.mon.commands("aggregate")
	if len(aggs) != 2 {
		t.Fatalf("%d aggregate commands, want 2 (the first and one resume)", len(aggs))
	}
	first, resumed := changeStreamStage(t, aggs[0]), changeStreamStage(t, aggs[1])
	if ra, _ := resumed.Lookup("resumeAfter").DocumentOK(); !bytes.Equal(ra, tok.Raw()) {
		t.Errorf("resumeAfter = %v, want the last token %v", resumed.Lookup("resumeAfter"), tok)
	}
	if first.Lookup("fullDocument").StringValue() != "updateLookup" || resumed.Lookup("fullDocument").StringValue() != "updateLookup" {
		t.Errorf("fullDocument not kept: %v then %v", first, resumed)
	}
	if a, b := aggs[0].Lookup("pipeline", "1"), aggs[1].Lookup("pipeline", "1"); !a.Equal(b) {
		t.Errorf("pipeline stage changed on resume: %v then %v", a, b)
	}
}

// Prose test 4: an error of the aggregate command is returned, not resumed.
func TestProse4AggregateErrorIsNotResumed(t *testing.T) {
	f := newFixture(t)
	_, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil, nil, options.ChangeStream().SetFullDocument("notAMode"))
	var se mongo.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("Watch with an invalid fullDocument: %v, want a server error", err)
	}
	if n := len(f.mon.commands("aggregate")); n != 1 {
		t.Errorf("%d aggregate commands, want 1", n)
	}
}

// Prose test 7: a cursor with an id and an empty first batch stays open.
func TestProse7EmptyFirstBatchKeepsCursor(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	reply := f.mon.repliesTo("aggregate")[0]
	id, _ := reply.Lookup("cursor", "id").Int64OK()
	if id == 0 {
		t.Fatal("the aggregate returned cursor id 0")
	}
	if batch, _ := reply.Lookup("cursor", "firstBatch").ArrayOK(); countFields(bson.Raw(batch)) != 0 {
		t.Fatalf("first batch not empty: %v", batch)
	}
	if _, ok, err := s.TryNext(f.ctx); ok || err != nil {
		t.Fatalf("TryNext = %v, %v", ok, err)
	}
	if len(f.mon.commands("killCursors")) != 0 {
		t.Error("the cursor was killed")
	}
	if f.srv != nil && f.srv.OpenCursors() != 1 {
		t.Errorf("%d server cursors, want 1", f.srv.OpenCursors())
	}
	f.insert(t, Order{ID: 1})
	nextOrder(t, f.ctx, s)
	for _, gm := range f.mon.commands("getMore") {
		if got := gm.Lookup("getMore").Int64(); got != id {
			t.Errorf("getMore on cursor %d, want %d", got, id)
		}
	}
}

// Prose test 8: the killCursors of a resume must not surface an error. A
// restart kills the server's cursors, so the driver kills a cursor the
// server no longer knows, then resumes.
func TestProse8KillCursorsDuringResume(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "Restart")
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1})
	nextOrder(t, f.ctx, s)
	f.srv.Restart()
	f.insert(t, Order{ID: 2})
	if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != 2 {
		t.Fatalf("after the restart: order %d, want 2", ev.FullDocument.ID)
	}
	aggs := f.mon.commands("aggregate")
	if len(aggs) < 2 || changeStreamStage(t, aggs[len(aggs)-1]).Lookup("resumeAfter").Type == 0 {
		t.Errorf("no resume: %d aggregates", len(aggs))
	}
}

// lastPBRT returns the postBatchResumeToken of the last reply to name.
func lastPBRT(t *testing.T, f *fixture, name string) bson.Raw {
	t.Helper()
	replies := f.mon.repliesTo(name)
	if len(replies) == 0 {
		t.Fatalf("no %s reply", name)
	}
	pbrt, ok := replies[len(replies)-1].Lookup("cursor", "postBatchResumeToken").DocumentOK()
	if !ok {
		t.Fatalf("%s reply without postBatchResumeToken", name)
	}
	return bson.Raw(pbrt)
}

// Prose test 11: with the batch empty or iterated to its last document,
// ResumeToken is the postBatchResumeToken of the latest reply.
func TestProse11PostBatchResumeToken(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f, options.ChangeStream().SetMaxAwaitTime(50*time.Millisecond))
	if got, want := s.ResumeToken().Raw(), lastPBRT(t, f, "aggregate"); !bytes.Equal(got, want) {
		t.Errorf("after an empty first batch: %v, want %v", got, want)
	}
	if _, _, err := s.TryNext(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TryNext(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := s.ResumeToken().Raw(), lastPBRT(t, f, "getMore"); !bytes.Equal(got, want) {
		t.Errorf("after an empty getMore: %v, want %v", got, want)
	}
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	nextOrder(t, f.ctx, s)
	nextOrder(t, f.ctx, s)
	if got, want := s.ResumeToken().Raw(), lastPBRT(t, f, "getMore"); !bytes.Equal(got, want) {
		t.Errorf("after the batch's last event: %v, want %v", got, want)
	}
}

// threeEvents writes three orders and returns their events, read by a
// stream that is then closed.
func threeEvents(t *testing.T, f *fixture) []stream.Event[Order] {
	t.Helper()
	s := watchOrders(t, f)
	f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3})
	var evs []stream.Event[Order]
	for range 3 {
		evs = append(evs, nextOrder(t, f.ctx, s))
	}
	_ = s.Close(f.ctx)
	return evs
}

// Prose test 13: within a batch, ResumeToken is the _id of the previous
// event.
func TestProse13TokenWithinBatch(t *testing.T) {
	f := newFixture(t)
	evs := threeEvents(t, f)
	s := watchOrders(t, f, options.ChangeStream().SetStartAtOperationTime(&evs[0].ClusterTime))
	// The last aggregate is this stream's: closing the first may have
	// taken one more (its Close kills a prefetch's cursor, and when the
	// kill reaches the server before the getMore, the driver resumes).
	aggs := f.mon.repliesTo("aggregate")
	batch, _ := aggs[len(aggs)-1].Lookup("cursor", "firstBatch").ArrayOK()
	if n := countFields(bson.Raw(batch)); n != 3 {
		t.Fatalf("first batch holds %d events, want 3", n)
	}
	for i := range 2 {
		ev := nextOrder(t, f.ctx, s)
		if !s.ResumeToken().Equal(ev.ID) || !ev.ID.Equal(evs[i].ID) {
			t.Errorf("event %d: ResumeToken %v, want its _id %v", i+1, s.ResumeToken(), evs[i].ID)
		}
	}
	nextOrder(t, f.ctx, s)
	if got, want := s.ResumeToken().Raw(), lastPBRT(t, f, "aggregate"); !bytes.Equal(got, want) {
		t.Errorf("after the last event: %v, want the postBatchResumeToken %v", got, want)
	}
}

// Prose test 14: before any iteration, ResumeToken is startAfter or
// resumeAfter, or empty.
func TestProse14TokenBeforeIteration(t *testing.T) {
	f := newFixture(t)
	evs := threeEvents(t, f)
	tests := []struct {
		name string
		opts *options.ChangeStreamOptionsBuilder
		want stream.Token
	}{
		{"startAfter", options.ChangeStream().SetStartAfter(evs[0].ID.Raw()), evs[0].ID},
		{"resumeAfter", options.ChangeStream().SetResumeAfter(evs[0].ID.Raw()), evs[0].ID},
		{"neither", options.ChangeStream().SetStartAtOperationTime(&evs[0].ClusterTime), stream.Token{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := watchOrders(t, f, tt.opts)
			replies := f.mon.repliesTo("aggregate")
			if batch, _ := replies[len(replies)-1].Lookup("cursor", "firstBatch").ArrayOK(); countFields(bson.Raw(batch)) == 0 {
				t.Fatal("first batch is empty")
			}
			if got := s.ResumeToken(); !got.Equal(tt.want) {
				t.Errorf("ResumeToken = %v, want %v", got, tt.want)
			}
		})
	}
}
