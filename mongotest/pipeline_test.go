package mongotest_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// stageDoc is the document the pipeline tests insert.
var stageDoc = bson.D{
	{Key: "_id", Value: 1},
	{Key: "item", Value: "tea"},
	{Key: "qty", Value: 5},
	{Key: "tags", Value: bson.A{bson.D{{Key: "n", Value: "a"}, {Key: "x", Value: 1}}, bson.D{{Key: "n", Value: "b"}, {Key: "x", Value: 2}}}},
	{Key: "meta", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 2}}},
}

// withoutID returns the relaxed extended JSON of ev without its _id, after
// checking that _id is a resume token.
func withoutID(t *testing.T, ev bson.Raw) string {
	t.Helper()
	if _, err := ev.LookupErr("_id", "_data"); err != nil {
		t.Fatalf("event %s has no resume token _id", ev)
	}
	var d bson.D
	if err := bson.Unmarshal(ev, &d); err != nil {
		t.Fatal(err)
	}
	out := d[:0]
	for _, e := range d {
		if e.Key != "_id" {
			out = append(out, e)
		}
	}
	b, err := bson.MarshalExtJSON(out, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestChangeStreamStages(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	tests := []struct {
		name     string
		pipeline mongo.Pipeline
		want     string
	}{
		{
			name:     "project inclusion with dotted paths",
			pipeline: mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "operationType", Value: 1}, {Key: "fullDocument.item", Value: 1}, {Key: "ns", Value: bson.D{{Key: "coll", Value: true}}}}}}},
			want:     `{"operationType":"insert","fullDocument":{"item":"tea"},"ns":{"coll":"c0"}}`,
		},
		{
			name: "project computed fields",
			pipeline: mongo.Pipeline{{{Key: "$project", Value: bson.D{
				{Key: "operationType", Value: 1},
				{Key: "what", Value: "$fullDocument.item"},
				{Key: "lit", Value: bson.D{{Key: "$literal", Value: "$notAPath"}}},
				{Key: "n", Value: "seven"},
				{Key: "nested", Value: bson.D{{Key: "q", Value: "$fullDocument.qty"}}},
				{Key: "names", Value: "$fullDocument.tags.n"},
				{Key: "gone", Value: "$fullDocument.nothing"},
				{Key: "arr", Value: bson.A{"$fullDocument.qty", "$fullDocument.nothing"}},
				{Key: "obj", Value: bson.D{{Key: "$literal", Value: bson.D{{Key: "k", Value: "$x"}}}}},
			}}}},
			want: `{"operationType":"insert","what":"tea","lit":"$notAPath","n":"seven","nested":{"q":5},"names":["a","b"],"arr":[5,null],"obj":{"k":"$x"}}`,
		},
		{
			name: "project exclusion with dotted paths and arrays",
			pipeline: mongo.Pipeline{{{Key: "$project", Value: bson.D{
				{Key: "clusterTime", Value: 0}, {Key: "wallTime", Value: false}, {Key: "ns", Value: 0}, {Key: "documentKey", Value: 0},
				{Key: "fullDocument.meta", Value: 0}, {Key: "fullDocument.tags.x", Value: 0},
			}}}},
			want: `{"operationType":"insert","fullDocument":{"_id":1,"item":"tea","qty":5,"tags":[{"n":"a"},{"n":"b"}]}}`,
		},
		{
			name: "addFields merges into embedded documents",
			pipeline: mongo.Pipeline{
				{{Key: "$addFields", Value: bson.D{
					{Key: "fullDocument.extra", Value: "$ns.coll"},
					{Key: "fullDocument", Value: bson.D{{Key: "meta", Value: bson.D{{Key: "c", Value: 3}}}}},
					{Key: "top", Value: bson.D{{Key: "$literal", Value: bson.D{{Key: "$a", Value: 1}}}}},
					{Key: "operationType", Value: "$fullDocument.item"},
				}}},
				{{Key: "$project", Value: bson.D{{Key: "operationType", Value: 1}, {Key: "fullDocument", Value: 1}, {Key: "top", Value: 1}}}},
			},
			want: `{"operationType":"tea","fullDocument":{"_id":1,"item":"tea","qty":5,"tags":[{"n":"a","x":1},{"n":"b","x":2}],"meta":{"a":1,"b":2,"c":3},"extra":"c3"},"top":{"$a":1}}`,
		},
		{
			name: "set with $$ROOT and $$REMOVE",
			pipeline: mongo.Pipeline{
				{{Key: "$set", Value: bson.D{{Key: "copy", Value: "$$ROOT.ns"}, {Key: "operationType", Value: "$$REMOVE"}}}},
				{{Key: "$project", Value: bson.D{{Key: "operationType", Value: 1}, {Key: "copy", Value: 1}}}},
			},
			want: `{"copy":{"db":"stages","coll":"c4"}}`,
		},
		{
			name:     "unset array of paths",
			pipeline: mongo.Pipeline{{{Key: "$unset", Value: bson.A{"clusterTime", "wallTime", "ns", "documentKey", "fullDocument.tags", "fullDocument.meta.a"}}}},
			want:     `{"operationType":"insert","fullDocument":{"_id":1,"item":"tea","qty":5,"meta":{"b":2}}}`,
		},
		{
			name: "unset one path",
			pipeline: mongo.Pipeline{
				{{Key: "$unset", Value: "fullDocument"}},
				{{Key: "$project", Value: bson.D{{Key: "fullDocument", Value: 1}, {Key: "operationType", Value: 1}}}},
			},
			want: `{"operationType":"insert"}`,
		},
		{
			name:     "replaceRoot keeping _id",
			pipeline: mongo.Pipeline{{{Key: "$replaceRoot", Value: bson.D{{Key: "newRoot", Value: bson.D{{Key: "_id", Value: "$_id"}, {Key: "doc", Value: "$fullDocument.item"}}}}}}},
			want:     `{"doc":"tea"}`,
		},
		{
			name:     "replaceWith keeping _id",
			pipeline: mongo.Pipeline{{{Key: "$replaceWith", Value: bson.D{{Key: "_id", Value: "$_id"}, {Key: "op", Value: "$operationType"}, {Key: "k", Value: "$documentKey._id"}}}}},
			want:     `{"op":"insert","k":1}`,
		},
		{
			name: "match then project",
			pipeline: mongo.Pipeline{
				{{Key: "$match", Value: bson.D{{Key: "fullDocument.item", Value: "tea"}}}},
				{{Key: "$project", Value: bson.D{{Key: "fullDocument.qty", Value: 1}}}},
			},
			want: `{"fullDocument":{"qty":5}}`,
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Each case watches its own collection c<n>.
			coll := client.Database("stages").Collection("c" + string(rune('0'+i)))
			cs, err := coll.Watch(ctx, tc.pipeline)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			// A document that $match cases filter out comes first.
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}, {Key: "item", Value: "coffee"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := coll.InsertOne(ctx, stageDoc); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tc.name, "match") {
				// Without a $match, the coffee insert comes first: skip it.
				if !cs.Next(ctx) {
					t.Fatalf("Next: %v", cs.Err())
				}
			}
			if !cs.Next(ctx) {
				t.Fatalf("Next: %v", cs.Err())
			}
			if got := withoutID(t, bson.Raw(cs.Current)); got != tc.want {
				t.Errorf("event\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestChangeStreamStageErrors(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database("stages").Collection("errs")
	tests := []struct {
		name     string
		pipeline mongo.Pipeline
		code     int32
		mention  string
	}{
		{"unsupported stage", mongo.Pipeline{{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}}}}}, 40324, "$group"},
		{"unsupported operator", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$concat", Value: bson.A{"a", "b"}}}}}}}}, 168, "$concat"},
		{"unsupported operator in addFields", mongo.Pipeline{{{Key: "$addFields", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$add", Value: bson.A{1, 2}}}}}}}}, 168, "$add"},
		{"exclusion in inclusion", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 0}}}}}, 31254, "exclusion on field b"},
		{"inclusion in exclusion", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "a", Value: 0}, {Key: "b", Value: 1}}}}}, 31253, "inclusion on field b"},
		{"empty project", mongo.Pipeline{{{Key: "$project", Value: bson.D{}}}}, 51272, "at least one field"},
		{"path collision", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "a", Value: 1}, {Key: "a.b", Value: 1}}}}}, 31250, "Path collision"},
		{"unset empty array", mongo.Pipeline{{{Key: "$unset", Value: bson.A{}}}}, 31119, "at least one field"},
		{"unset number", mongo.Pipeline{{{Key: "$unset", Value: 1}}}, 31002, "string or an array"},
		{"project with a non-object", mongo.Pipeline{{{Key: "$project", Value: "a"}}}, 15969, "must be an object"},
		{"set with a non-object", mongo.Pipeline{{{Key: "$set", Value: 1}}}, 40272, "must be an object"},
		{"replaceRoot with a non-object", mongo.Pipeline{{{Key: "$replaceRoot", Value: 1}}}, 40229, "expected an object"},
		{"replaceRoot without newRoot", mongo.Pipeline{{{Key: "$replaceRoot", Value: bson.D{}}}}, 40231, "newRoot"},
		{"undefined variable", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "x", Value: "$$NOW"}}}}}, 17276, "NOW"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := coll.Watch(ctx, tc.pipeline)
			if err == nil {
				cs.Close(ctx)
				t.Fatal("Watch succeeded")
			}
			var se mongo.ServerError
			if !errors.As(err, &se) || !se.HasErrorCode(int(tc.code)) {
				t.Fatalf("Watch error = %v, want code %d", err, tc.code)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Watch error = %v, want it to mention %q", err, tc.mention)
			}
		})
	}
}

// TestChangeStreamStageModifiesID checks that a pipeline that removes or
// changes _id fails the getMore with ChangeStreamFatalError (280), which
// the driver does not resume.
func TestChangeStreamStageModifiesID(t *testing.T) {
	tests := []struct {
		name     string
		pipeline mongo.Pipeline
	}{
		{"project _id 0", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "_id", Value: 0}}}}}},
		{"project _id computed", mongo.Pipeline{{{Key: "$project", Value: bson.D{{Key: "_id", Value: "$documentKey"}}}}}},
		{"unset _id", mongo.Pipeline{{{Key: "$unset", Value: "_id"}}}},
		{"set _id", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "_id", Value: "x"}}}}}},
		{"set _id._data", mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "_id._data", Value: "00"}}}}}},
		{"replaceRoot fullDocument", mongo.Pipeline{{{Key: "$replaceRoot", Value: bson.D{{Key: "newRoot", Value: "$fullDocument"}}}}}},
	}
	srv := mongotest.New(t, nil)
	var mu sync.Mutex
	aggregates := 0
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "aggregate" {
			mu.Lock()
			aggregates++
			mu.Unlock()
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			coll := client.Database("stages").Collection("fatal" + string(rune('0'+i)))
			mu.Lock()
			aggregates = 0
			mu.Unlock()
			cs, err := coll.Watch(ctx, tc.pipeline)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			if _, err := coll.InsertOne(ctx, stageDoc); err != nil {
				t.Fatal(err)
			}
			if cs.Next(ctx) {
				t.Fatalf("Next returned an event: %s", cs.Current)
			}
			var se mongo.ServerError
			if !errors.As(cs.Err(), &se) || !se.HasErrorCode(280) || !se.HasErrorLabel("NonResumableChangeStreamError") {
				t.Fatalf("Err = %v, want ChangeStreamFatalError 280 labelled NonResumableChangeStreamError", cs.Err())
			}
			mu.Lock()
			n := aggregates
			mu.Unlock()
			if n != 1 {
				t.Errorf("driver sent %d aggregates, want 1 (no resume)", n)
			}
		})
	}
}
