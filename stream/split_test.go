package stream_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// bigDoc is the document of the split-event tests.
type bigDoc struct {
	ID    int    `bson:"_id"`
	Value string `bson:"value"`
}

const tenMiB = 10 << 20

// largeCollection creates a collection that records pre- and post-images
// and holds {_id: 1, value: "q"*10MiB}, as prose test 19 does.
func largeCollection(t *testing.T, f *fixture) (*mongo.Collection, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("10 MiB documents; skipped under -short")
	}
	err := f.db.CreateCollection(f.ctx, "large",
		options.CreateCollection().SetChangeStreamPreAndPostImages(bson.D{{Key: "enabled", Value: true}}))
	if err != nil {
		t.Fatal(err)
	}
	coll := f.db.Collection("large")
	before := strings.Repeat("q", tenMiB)
	if _, err := coll.InsertOne(f.ctx, bigDoc{ID: 1, Value: before}); err != nil {
		t.Fatal(err)
	}
	return coll, before
}

// splitEventsOf returns the splitEvent {fragment, of} of each event in the
// getMore and aggregate replies.
func splitEventsOf(replies []bson.Raw) [][2]int32 {
	var out [][2]int32
	for _, r := range replies {
		for _, batch := range []string{"nextBatch", "firstBatch"} {
			arr, ok := r.Lookup("cursor", batch).ArrayOK()
			if !ok {
				continue
			}
			vals, _ := arr.Values()
			for _, v := range vals {
				se, ok := v.Document().Lookup("splitEvent").DocumentOK()
				if ok {
					out = append(out, [2]int32{se.Lookup("fragment").Int32(), se.Lookup("of").Int32()})
				}
			}
		}
	}
	return out
}

// Prose test 19: an event over 16 MiB is split by
// $changeStreamSplitLargeEvent; Stream joins the fragments and delivers
// one event whose documents are what was written.
func TestProse19SplitLargeEventIsDeliveredWhole(t *testing.T) {
	tests := []struct {
		name          string
		fullDocument  bool // also ask for the post-image (updateLookup)
		wantFragments [][2]int32
	}{
		{"pre-image and update description", false, [][2]int32{{1, 2}, {2, 2}}},
		{"pre-image, update description and post-image", true, [][2]int32{{1, 3}, {2, 3}, {3, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			coll, before := largeCollection(t, f)
			cs := options.ChangeStream().SetFullDocumentBeforeChange(options.Required)
			if tt.fullDocument {
				cs.SetFullDocument(options.UpdateLookup)
			}
			s, err := stream.Watch[stream.Event[bigDoc]](f.ctx, coll, nil, &stream.Options{SplitEvents: true}, cs)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			after := strings.Repeat("z", tenMiB)
			if _, err := coll.UpdateOne(f.ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: after}}}}); err != nil {
				t.Fatal(err)
			}
			ev, err := s.Next(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkLargeUpdate(t, ev, before, after, tt.fullDocument)
			if got := splitEventsOf(f.mon.repliesTo("getMore")); !equalPairs(got, tt.wantFragments) {
				t.Errorf("the server sent fragments %v, want %v", got, tt.wantFragments)
			}
			if !s.ResumeToken().Equal(ev.ID) {
				t.Errorf("ResumeToken %v, want the whole event's token %v", s.ResumeToken(), ev.ID)
			}
			agg := f.mon.commands("aggregate")
			if n := strings.Count(agg[0].String(), "$changeStreamSplitLargeEvent"); n != 1 {
				t.Errorf("aggregate names the split stage %d times: %v", n, agg[0])
			}
		})
	}
}

func equalPairs(a, b [][2]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkLargeUpdate checks the joined update event of prose test 19.
func checkLargeUpdate(t *testing.T, ev stream.Event[bigDoc], before, after string, wantFull bool) {
	t.Helper()
	if ev.OperationType != stream.OpUpdate {
		t.Errorf("operationType %q, want update", ev.OperationType)
	}
	if ev.SplitEvent != nil {
		t.Errorf("the delivered event is a fragment: %+v", *ev.SplitEvent)
	}
	if ev.Extra != nil {
		t.Errorf("the joined event has fields it does not name: %v", ev.Extra)
	}
	if ev.FullDocumentBeforeChange == nil || *ev.FullDocumentBeforeChange != (bigDoc{ID: 1, Value: before}) {
		t.Errorf("fullDocumentBeforeChange is not the document written before (%d bytes)", lenValue(ev.FullDocumentBeforeChange))
	}
	if ev.UpdateDescription == nil || ev.UpdateDescription.UpdatedFields.Lookup("value").StringValue() != after {
		t.Error("updateDescription.updatedFields.value is not the value written")
	}
	if wantFull {
		if ev.FullDocument == nil || *ev.FullDocument != (bigDoc{ID: 1, Value: after}) {
			t.Errorf("fullDocument is not the document written (%d bytes)", lenValue(ev.FullDocument))
		}
	} else if ev.FullDocument != nil {
		t.Error("fullDocument present without updateLookup")
	}
	if ev.DocumentKey.Lookup("_id").Int32() != 1 || ev.NS.Coll != "large" || ev.ClusterTime.IsZero() {
		t.Errorf("envelope fields lost: key %v ns %v clusterTime %v", ev.DocumentKey, ev.NS, ev.ClusterTime)
	}
}

func lenValue(d *bigDoc) int {
	if d == nil {
		return -1
	}
	return len(d.Value)
}

// restartAfterFirstFragment is a command monitor that restarts the server
// once, as soon as the client has received a reply holding fragment 1.
// It also records the resume tokens of the aggregates the client sends.
type restartAfterFirstFragment struct {
	restart func()
	once    sync.Once
	mu      sync.Mutex
	resumes []bson.Raw // resumeAfter of each aggregate that had one
}

func (r *restartAfterFirstFragment) resumedFrom() []bson.Raw {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resumes
}

func (r *restartAfterFirstFragment) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "aggregate" {
			return
		}
		if tok, ok := e.Command.Lookup("pipeline", "0", "$changeStream", "resumeAfter").DocumentOK(); ok {
			r.mu.Lock()
			r.resumes = append(r.resumes, clone(tok))
			r.mu.Unlock()
		}
	}, Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		if e.CommandName != "getMore" && e.CommandName != "aggregate" {
			return
		}
		for _, p := range splitEventsOf([]bson.Raw{e.Reply}) {
			if p[0] == 1 {
				r.once.Do(r.restart)
			}
		}
	}}
}

// A fault between two fragments: the driver resumes from the token of the
// first fragment and receives the rest, or, for a failure the driver does
// not resume, the stream watches again from the last whole event and
// receives every fragment again; either way the event is delivered whole,
// once, and the next event follows it.
func TestSplitEventSurvivesFaultBetweenFragments(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(f *fixture, r *restartAfterFirstFragment)
		rewatch bool // the stream's own re-watch mends the fault, not the driver
	}{
		{name: "getMore after the first fragment closes the connection", inject: func(f *fixture, _ *restartAfterFirstFragment) {
			// The stream's first getMore brings fragment 1; the second fails.
			f.srv.FailCommand(mongotestFailGetMore(1))
		}},
		{name: "server restart after the first fragment", inject: func(f *fixture, r *restartAfterFirstFragment) {
			r.restart = f.srv.Restart
		}},
		{name: "an error the driver does not resume after the first fragment", rewatch: true, inject: func(f *fixture, _ *restartAfterFirstFragment) {
			// HostUnreachable without the ResumableChangeStreamError label.
			f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1, Skip: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &restartAfterFirstFragment{restart: func() {}}
			f := newFixture(t, options.Client().SetMonitor(r.monitor()))
			f.needMongotest(t, "failpoints and Restart")
			coll, before := largeCollection(t, f)
			s, err := stream.Watch[stream.Event[bigDoc]](f.ctx, coll, nil, &stream.Options{SplitEvents: true},
				options.ChangeStream().SetFullDocumentBeforeChange(options.Required))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			after := strings.Repeat("z", tenMiB)
			if _, err := coll.UpdateOne(f.ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: after}}}}); err != nil {
				t.Fatal(err)
			}
			tt.inject(f, r)
			ev, err := s.Next(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkLargeUpdate(t, ev, before, after, false)
			resumes := r.resumedFrom()
			if len(resumes) != 1 || bytes.Equal(resumes[0], ev.ID.Raw()) {
				t.Fatalf("resumed from %v; want one resume, not from the event's own token %v", resumes, ev.ID)
			}
			from, err := stream.TokenFromRaw(resumes[0])
			if err != nil {
				t.Fatal(err)
			}
			fromTime, err1 := from.ClusterTime()
			evTime, err2 := ev.ID.ClusterTime()
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			switch {
			case fromTime.Before(evTime):
				// The stream watched again from before the event, never
				// from inside it: after a fault the driver does not resume,
				// or when the driver's own resume failed (a restart can
				// leave its pool cleared).
				if st := s.Stats(); st.Rewatches != 1 {
					t.Errorf("resumed from %v before the event, but Stats().Rewatches = %d, want 1", from, st.Rewatches)
				}
			case tt.rewatch:
				t.Errorf("re-watched from %v at %v, want a token before the event at %v", from, fromTime, evTime)
			case fromTime != evTime:
				t.Errorf("resumed from %v at %v, want fragment 1's token at %v", from, fromTime, evTime)
			}
			if _, err := coll.InsertOne(f.ctx, bigDoc{ID: 2, Value: "small"}); err != nil {
				t.Fatal(err)
			}
			next, err := s.Next(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if next.OperationType != stream.OpInsert || next.DocumentKey.Lookup("_id").Int32() != 2 {
				t.Errorf("after the split event came %s of %v, want the insert of 2 (the split event once)", next.OperationType, next.DocumentKey)
			}
			if !s.ResumeToken().Equal(next.ID) {
				t.Errorf("ResumeToken %v, want %v", s.ResumeToken(), next.ID)
			}
		})
	}
}

// A stream that starts from the token of a fragment other than the last
// starts in the middle of an event: that is an error naming the token, not a
// half event.
func TestSplitEventResumeFromFragmentTokenIsAnError(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "fragment tokens")
	coll, _ := largeCollection(t, f)
	start := f.srv.ClusterTime()
	if _, err := coll.UpdateOne(f.ctx, bson.D{}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: strings.Repeat("z", tenMiB)}}}}); err != nil {
		t.Fatal(err)
	}
	// A raw driver stream reads fragment 1 and its token.
	cs, err := coll.Watch(f.ctx, mongo.Pipeline{{{Key: "$changeStreamSplitLargeEvent", Value: bson.D{}}}},
		options.ChangeStream().SetFullDocumentBeforeChange(options.Required).SetStartAtOperationTime(&bson.Timestamp{T: start.T, I: start.I + 1}))
	if err != nil {
		t.Fatal(err)
	}
	if !cs.Next(f.ctx) {
		t.Fatal(cs.Err())
	}
	first := bson.Raw(append([]byte(nil), cs.Current.Lookup("_id").Document()...))
	_ = cs.Close(f.ctx)

	s, err := stream.Watch[stream.Event[bigDoc]](f.ctx, coll, nil, &stream.Options{SplitEvents: true},
		options.ChangeStream().SetFullDocumentBeforeChange(options.Required).SetResumeAfter(first))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(f.ctx)
	ev, err := s.Next(f.ctx)
	if err == nil {
		t.Fatalf("Next delivered %s (splitEvent %v) from the middle of a split event", ev.OperationType, ev.SplitEvent)
	}
	var se *stream.SplitError
	if !errors.As(err, &se) || !errors.Is(err, stream.ErrSplitEvent) {
		t.Fatalf("error %v, want a *SplitError", err)
	}
	if se.Fragment != 2 || se.Of != 2 || se.Want != 1 || se.Token.IsZero() || !strings.Contains(err.Error(), se.Token.String()) {
		t.Errorf("SplitError %+v: want fragment 2 of 2 where 1 was expected, named by its token", se)
	}
	if s.Alive() {
		t.Error("Alive() after a broken split event")
	}
}

// SplitEvents appends the stage to every form of pipeline, once: a pipeline
// that already ends with it is left alone.
func TestSplitEventsStageIsAppendedOnce(t *testing.T) {
	match := bson.D{{Key: "$match", Value: bson.D{{Key: "operationType", Value: "insert"}}}}
	split := bson.D{{Key: "$changeStreamSplitLargeEvent", Value: bson.D{}}}
	rawStage := func(st bson.D) bson.Raw {
		b, _ := bson.Marshal(st)
		return b
	}
	tests := []struct {
		name     string
		pipeline any
		want     []string // stage names after $changeStream
	}{
		{"nil", nil, []string{"$changeStreamSplitLargeEvent"}},
		{"mongo.Pipeline", mongo.Pipeline{match}, []string{"$match", "$changeStreamSplitLargeEvent"}},
		{"bson.A of bson.M", bson.A{bson.M{"$match": bson.M{"operationType": "insert"}}}, []string{"$match", "$changeStreamSplitLargeEvent"}},
		{"[]bson.D ending with the stage", []bson.D{match, split}, []string{"$match", "$changeStreamSplitLargeEvent"}},
		{"bson.A ending with the stage as bson.M", bson.A{bson.M{"$changeStreamSplitLargeEvent": bson.M{}}}, []string{"$changeStreamSplitLargeEvent"}},
		{"[]bson.Raw", []bson.Raw{rawStage(match)}, []string{"$match", "$changeStreamSplitLargeEvent"}},
		{"[]bson.Raw ending with the stage", []bson.Raw{rawStage(match), rawStage(split)}, []string{"$match", "$changeStreamSplitLargeEvent"}},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(f.mon.commands("aggregate"))
			s, err := stream.Watch[bson.Raw](f.ctx, f.coll, tt.pipeline, &stream.Options{SplitEvents: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			agg := f.mon.commands("aggregate")[n]
			vals, _ := agg.Lookup("pipeline").Array().Values()
			var got []string
			for _, v := range vals[1:] {
				got = append(got, v.Document().Index(0).Key())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("stages %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := stream.Watch[bson.Raw](f.ctx, f.coll, bson.D{{Key: "$match", Value: bson.D{}}}, &stream.Options{SplitEvents: true}); err == nil {
		t.Error("Watch accepted a single document as the pipeline")
	}
}

// mongotestFailGetMore closes the connection of the getMore that follows
// the first skip getMores.
func mongotestFailGetMore(skip int) mongotest.FailPoint {
	return mongotest.FailPoint{Commands: []string{"getMore"}, CloseConnection: true, Times: 1, Skip: skip}
}
