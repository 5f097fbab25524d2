package mongotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// fixture is one server, one client and one collection.
type fixture struct {
	srv    *mongotest.Server
	client *mongo.Client
	db     *mongo.Database
	coll   *mongo.Collection
	ctx    context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := mongotest.New(t, nil)
	// A short heartbeat bounds how long Disconnect can wait for a streamed
	// hello in flight (the driver was seen waiting a whole 10 s heartbeat).
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).
		SetServerSelectionTimeout(5 * time.Second).SetHeartbeatInterval(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	db := client.Database("test")
	return &fixture{srv: srv, client: client, db: db, coll: db.Collection("c"), ctx: ctx}
}

// seed inserts docs into the fixture's collection.
func (f *fixture) seed(t *testing.T, docs ...bson.D) {
	t.Helper()
	if len(docs) == 0 {
		return
	}
	if _, err := f.coll.InsertMany(f.ctx, docs); err != nil {
		t.Fatal(err)
	}
}

// all returns the collection's documents in natural order.
func (f *fixture) all(t *testing.T) []bson.D {
	t.Helper()
	cur, err := f.coll.Find(f.ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.D
	if err := cur.All(f.ctx, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// errCode returns the server error code of err, or 0.
func errCode(err error) int {
	var we mongo.WriteException
	if errors.As(err, &we) {
		if len(we.WriteErrors) > 0 {
			return we.WriteErrors[0].Code
		}
		if we.WriteConcernError != nil {
			return we.WriteConcernError.Code
		}
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return 0
}

func ids(docs []bson.D) []any {
	out := make([]any, len(docs))
	for i, d := range docs {
		for _, e := range d {
			if e.Key == "_id" {
				out[i] = e.Value
			}
		}
	}
	return out
}

func TestFindFilters(t *testing.T) {
	f := newFixture(t)
	f.seed(t,
		bson.D{{Key: "_id", Value: int32(1)}, {Key: "n", Value: int32(5)}, {Key: "tags", Value: bson.A{"x", "y"}}, {Key: "a", Value: bson.D{{Key: "b", Value: int32(1)}}}},
		bson.D{{Key: "_id", Value: int32(2)}, {Key: "n", Value: 7.5}, {Key: "tags", Value: bson.A{"y"}}, {Key: "a", Value: bson.A{bson.D{{Key: "b", Value: int32(2)}}, bson.D{{Key: "b", Value: int32(3)}}}}},
		bson.D{{Key: "_id", Value: int32(3)}, {Key: "n", Value: int64(10)}, {Key: "s", Value: "hello"}, {Key: "nul", Value: nil}},
		bson.D{{Key: "_id", Value: int32(4)}, {Key: "n", Value: "five"}, {Key: "tags", Value: bson.A{}}},
	)
	tests := []struct {
		name   string
		filter bson.D
		want   []any
	}{
		{"empty", bson.D{}, []any{int32(1), int32(2), int32(3), int32(4)}},
		{"eq number across types", bson.D{{Key: "n", Value: 10.0}}, []any{int32(3)}},
		{"array contains", bson.D{{Key: "tags", Value: "x"}}, []any{int32(1)}},
		{"whole array", bson.D{{Key: "tags", Value: bson.A{"y"}}}, []any{int32(2)}},
		{"dotted", bson.D{{Key: "a.b", Value: int32(1)}}, []any{int32(1)}},
		{"dotted through array", bson.D{{Key: "a.b", Value: int32(3)}}, []any{int32(2)}},
		{"array index", bson.D{{Key: "a.0.b", Value: int32(2)}}, []any{int32(2)}},
		{"gt numbers only", bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: int32(6)}}}}, []any{int32(2), int32(3)}},
		{"lte", bson.D{{Key: "n", Value: bson.D{{Key: "$lte", Value: int32(5)}}}}, []any{int32(1)}},
		{"gt string bracket", bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: ""}}}}, []any{int32(4)}},
		{"ne", bson.D{{Key: "tags", Value: bson.D{{Key: "$ne", Value: "y"}}}}, []any{int32(3), int32(4)}},
		{"in", bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{int64(1), 3.0}}}}}, []any{int32(1), int32(3)}},
		{"nin", bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: bson.A{1, 2}}}}}, []any{int32(3), int32(4)}},
		{"exists", bson.D{{Key: "s", Value: bson.D{{Key: "$exists", Value: true}}}}, []any{int32(3)}},
		{"not exists", bson.D{{Key: "tags", Value: bson.D{{Key: "$exists", Value: false}}}}, []any{int32(3)}},
		{"null matches missing", bson.D{{Key: "nul", Value: nil}}, []any{int32(1), int32(2), int32(3), int32(4)}},
		{"and", bson.D{{Key: "$and", Value: bson.A{bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: 5}}}}, bson.D{{Key: "n", Value: bson.D{{Key: "$lt", Value: 10}}}}}}}, []any{int32(1), int32(2)}},
		{"or", bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "s", Value: "hello"}}}}}, []any{int32(1), int32(3)}},
		{"nor", bson.D{{Key: "$nor", Value: bson.A{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}}}, []any{int32(3), int32(4)}},
		{"not", bson.D{{Key: "n", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gt", Value: 6}}}}}}, []any{int32(1), int32(4)}},
		{"type", bson.D{{Key: "n", Value: bson.D{{Key: "$type", Value: "long"}}}}, []any{int32(3)}},
		{"type number", bson.D{{Key: "n", Value: bson.D{{Key: "$type", Value: "number"}}}}, []any{int32(1), int32(2), int32(3)}},
		{"size", bson.D{{Key: "tags", Value: bson.D{{Key: "$size", Value: 2}}}}, []any{int32(1)}},
		{"all", bson.D{{Key: "tags", Value: bson.D{{Key: "$all", Value: bson.A{"y", "x"}}}}}, []any{int32(1)}},
		{"elemMatch", bson.D{{Key: "a", Value: bson.D{{Key: "$elemMatch", Value: bson.D{{Key: "b", Value: bson.D{{Key: "$gt", Value: 2}}}}}}}}, []any{int32(2)}},
		{"regex", bson.D{{Key: "s", Value: bson.D{{Key: "$regex", Value: "^HEL"}, {Key: "$options", Value: "i"}}}}, []any{int32(3)}},
		{"regex literal", bson.D{{Key: "tags", Value: bson.Regex{Pattern: "^x"}}}, []any{int32(1)}},
		{"literal subdocument", bson.D{{Key: "a", Value: bson.D{{Key: "b", Value: 1}}}}, []any{int32(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := f.coll.Find(f.ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []bson.D
			if err := cur.All(f.ctx, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindFilterErrors(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}})
	tests := []struct {
		name   string
		filter bson.D
		code   int
	}{
		{"unknown field operator", bson.D{{Key: "a", Value: bson.D{{Key: "$foo", Value: 1}}}}, 2},
		{"unknown top-level operator", bson.D{{Key: "$foo", Value: 1}}, 2},
		{"empty $or", bson.D{{Key: "$or", Value: bson.A{}}}, 2},
		{"$size not a number", bson.D{{Key: "a", Value: bson.D{{Key: "$size", Value: "x"}}}}, 2},
		{"$where unsupported", bson.D{{Key: "$where", Value: "true"}}, 238},
		{"$expr operator unsupported", bson.D{{Key: "$expr", Value: bson.D{{Key: "$add", Value: bson.A{1, 2}}}}}, 168},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.coll.Find(f.ctx, tc.filter)
			if got := errCode(err); got != tc.code {
				t.Fatalf("error %v: code %d, want %d", err, got, tc.code)
			}
		})
	}
}

func TestFindOptions(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 5; i++ {
		f.seed(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "k", Value: int32(i % 3)}, {Key: "sub", Value: bson.D{{Key: "x", Value: int32(i)}, {Key: "y", Value: "y"}}}})
	}
	tests := []struct {
		name string
		opts *options.FindOptionsBuilder
		want []bson.D
	}{
		{"sort desc, skip, limit", options.Find().SetSort(bson.D{{Key: "k", Value: -1}, {Key: "_id", Value: 1}}).SetSkip(1).SetLimit(2).SetProjection(bson.D{{Key: "k", Value: 1}}),
			[]bson.D{{{Key: "_id", Value: int32(5)}, {Key: "k", Value: int32(2)}}, {{Key: "_id", Value: int32(1)}, {Key: "k", Value: int32(1)}}}},
		{"inclusion without _id, dotted", options.Find().SetLimit(1).SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: "sub.x", Value: 1}}),
			[]bson.D{{{Key: "sub", Value: bson.D{{Key: "x", Value: int32(1)}}}}}},
		{"exclusion", options.Find().SetLimit(1).SetProjection(bson.D{{Key: "sub", Value: 0}, {Key: "k", Value: false}}),
			[]bson.D{{{Key: "_id", Value: int32(1)}}}},
		{"nested and computed fields", options.Find().SetLimit(1).SetProjection(bson.D{{Key: "sub", Value: bson.D{{Key: "y", Value: 1}}}, {Key: "copy", Value: "$sub.x"}, {Key: "lit", Value: "v"}}),
			[]bson.D{{{Key: "_id", Value: int32(1)}, {Key: "sub", Value: bson.D{{Key: "y", Value: "y"}}}, {Key: "copy", Value: int32(1)}, {Key: "lit", Value: "v"}}}},
		{"batches through getMore", options.Find().SetBatchSize(2).SetProjection(bson.D{{Key: "_id", Value: 1}}),
			[]bson.D{{{Key: "_id", Value: int32(1)}}, {{Key: "_id", Value: int32(2)}}, {{Key: "_id", Value: int32(3)}}, {{Key: "_id", Value: int32(4)}}, {{Key: "_id", Value: int32(5)}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := f.coll.Find(f.ctx, bson.D{}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []bson.D
			if err := cur.All(f.ctx, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("mixed projection is an error", func(t *testing.T) {
		_, err := f.coll.Find(f.ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "a", Value: 1}, {Key: "b", Value: 0}}))
		if got := errCode(err); got != 31254 {
			t.Fatalf("error %v: code %d, want 31254", err, got)
		}
	})
	t.Run("find-only projection operators are named", func(t *testing.T) {
		for _, p := range []bson.D{
			{{Key: "sub", Value: bson.D{{Key: "$slice", Value: 1}}}},
			{{Key: "arr.$", Value: 1}},
			{{Key: "sub", Value: bson.D{{Key: "x", Value: bson.D{{Key: "$elemMatch", Value: bson.D{}}}}}}},
		} {
			_, err := f.coll.Find(f.ctx, bson.D{}, options.Find().SetProjection(p))
			if got := errCode(err); got != 238 {
				t.Errorf("projection %v: error %v: code %d, want 238", p, err, got)
			}
		}
	})
	t.Run("unsupported option is named", func(t *testing.T) {
		_, err := f.coll.Find(f.ctx, bson.D{}, options.Find().SetMin(bson.D{{Key: "_id", Value: 1}}))
		if got := errCode(err); got != 238 {
			t.Fatalf("error %v: code %d, want 238", err, got)
		}
	})
	t.Run("count", func(t *testing.T) {
		n, err := f.coll.EstimatedDocumentCount(f.ctx)
		if err != nil || n != 5 {
			t.Fatalf("EstimatedDocumentCount = %d, %v; want 5", n, err)
		}
	})
}

func TestDeleteLimit(t *testing.T) {
	f := newFixture(t)
	f.seed(t, bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: 1}}, bson.D{{Key: "_id", Value: 2}, {Key: "k", Value: 1}}, bson.D{{Key: "_id", Value: 3}, {Key: "k", Value: 2}})
	r, err := f.coll.DeleteOne(f.ctx, bson.D{{Key: "k", Value: 1}})
	if err != nil || r.DeletedCount != 1 {
		t.Fatalf("DeleteOne = %+v, %v", r, err)
	}
	r, err = f.coll.DeleteMany(f.ctx, bson.D{})
	if err != nil || r.DeletedCount != 2 {
		t.Fatalf("DeleteMany = %+v, %v", r, err)
	}
}

func TestFindOneAndModify(t *testing.T) {
	doc := func(id, n int32) bson.D { return bson.D{{Key: "_id", Value: id}, {Key: "n", Value: n}} }
	tests := []struct {
		name    string
		run     func(f *fixture) *mongo.SingleResult
		want    bson.D // nil: ErrNoDocuments
		wantAll []bson.D
	}{
		{"update returns old by default", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndUpdate(f.ctx, bson.D{}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.FindOneAndUpdate().SetSort(bson.D{{Key: "n", Value: -1}}))
		}, doc(2, 20), []bson.D{doc(1, 10), doc(2, 21)}},
		{"update returns new", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndUpdate(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(0)}}}}, options.FindOneAndUpdate().SetReturnDocument(options.After).SetProjection(bson.D{{Key: "_id", Value: 0}}))
		}, bson.D{{Key: "n", Value: int32(0)}}, []bson.D{doc(1, 0), doc(2, 20)}},
		{"pipeline update", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndUpdate(f.ctx, bson.D{{Key: "_id", Value: 2}}, mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "m", Value: "$n"}}}}}, options.FindOneAndUpdate().SetReturnDocument(options.After))
		}, bson.D{{Key: "_id", Value: int32(2)}, {Key: "n", Value: int32(20)}, {Key: "m", Value: int32(20)}}, []bson.D{doc(1, 10), {{Key: "_id", Value: int32(2)}, {Key: "n", Value: int32(20)}, {Key: "m", Value: int32(20)}}}},
		{"upsert returns new", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndUpdate(f.ctx, bson.D{{Key: "_id", Value: int32(3)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(30)}}}}, options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After))
		}, doc(3, 30), []bson.D{doc(1, 10), doc(2, 20), doc(3, 30)}},
		{"no match", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndUpdate(f.ctx, bson.D{{Key: "_id", Value: 9}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 1}}}})
		}, nil, []bson.D{doc(1, 10), doc(2, 20)}},
		{"replace", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndReplace(f.ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "x", Value: "y"}}, options.FindOneAndReplace().SetReturnDocument(options.After))
		}, bson.D{{Key: "_id", Value: int32(1)}, {Key: "x", Value: "y"}}, []bson.D{{{Key: "_id", Value: int32(1)}, {Key: "x", Value: "y"}}, doc(2, 20)}},
		{"delete", func(f *fixture) *mongo.SingleResult {
			return f.coll.FindOneAndDelete(f.ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 5}}}}, options.FindOneAndDelete().SetSort(bson.D{{Key: "n", Value: -1}}))
		}, doc(2, 20), []bson.D{doc(1, 10)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.seed(t, doc(1, 10), doc(2, 20))
			var got bson.D
			err := tc.run(f).Decode(&got)
			if tc.want == nil {
				if !errors.Is(err, mongo.ErrNoDocuments) {
					t.Fatalf("Decode = %v, %v; want ErrNoDocuments", got, err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAll, f.all(t)); diff != "" {
				t.Errorf("collection (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("update and remove together is an error", func(t *testing.T) {
		f := newFixture(t)
		err := f.db.RunCommand(f.ctx, bson.D{{Key: "findAndModify", Value: "c"}, {Key: "remove", Value: true}, {Key: "update", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 1}}}}}}).Err()
		if got := errCode(err); got != 9 {
			t.Fatalf("error %v: code %d, want 9", err, got)
		}
	})
}
