package mongotest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// dupKeyIndex returns the index named by a duplicate-key error, or "".
func dupKeyIndex(err error) string {
	if !mongo.IsDuplicateKeyError(err) {
		return ""
	}
	_, rest, ok := strings.Cut(err.Error(), " index: ")
	if !ok {
		return "?"
	}
	name, _, _ := strings.Cut(rest, " ")
	return name
}

// Unique indexes are enforced as a real server enforces them: on insert,
// update, replace, upsert and findAndModify, over compound keys, with sparse
// and partial indexes, and when the index is built over existing documents.
// A write that fails writes no change event.
func TestUniqueIndexes(t *testing.T) {
	srv := mongotest.New(t, nil)
	client := connect(t, srv.URI())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := client.Database("uniq")
	users := db.Collection("users")
	if _, err := users.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_1")},
		{Keys: bson.D{{Key: "org", Value: 1}, {Key: "login", Value: 1}}, Options: options.Index().SetUnique(true).SetName("org_login")},
		{Keys: bson.D{{Key: "phone", Value: 1}}, Options: options.Index().SetUnique(true).SetSparse(true).SetName("phone_sparse")},
		{Keys: bson.D{{Key: "badge", Value: 1}}, Options: options.Index().SetUnique(true).SetName("badge_active").
			SetPartialFilterExpression(bson.D{{Key: "active", Value: true}})},
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := users.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetMaxAwaitTime(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	ins := func(d bson.D) error { _, err := users.InsertOne(ctx, d); return err }
	if err := ins(bson.D{{Key: "_id", Value: 1}, {Key: "email", Value: "a@x"}, {Key: "org", Value: "o"}, {Key: "login", Value: "a"}, {Key: "badge", Value: 7}, {Key: "active", Value: true}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		write func() error
		index string // "" when the write must succeed
	}{
		{"insert with a taken email", func() error {
			return ins(bson.D{{Key: "_id", Value: 2}, {Key: "email", Value: "a@x"}})
		}, "email_1"},
		{"insert with a taken compound key", func() error {
			return ins(bson.D{{Key: "_id", Value: 3}, {Key: "email", Value: "c@x"}, {Key: "org", Value: "o"}, {Key: "login", Value: "a"}})
		}, "org_login"},
		{"insert with half the compound key", func() error {
			return ins(bson.D{{Key: "_id", Value: 4}, {Key: "email", Value: "d@x"}, {Key: "org", Value: "o"}, {Key: "login", Value: "d"}})
		}, ""},
		{"a second document without email (null) is a duplicate", func() error {
			if err := ins(bson.D{{Key: "_id", Value: 5}, {Key: "org", Value: "p"}}); err != nil {
				return err
			}
			return ins(bson.D{{Key: "_id", Value: 6}, {Key: "org", Value: "q"}})
		}, "email_1"},
		{"sparse: documents without phone do not collide", func() error {
			return ins(bson.D{{Key: "_id", Value: 7}, {Key: "email", Value: "g@x"}, {Key: "org", Value: "r"}})
		}, ""},
		{"partial: an inactive badge may repeat", func() error {
			return ins(bson.D{{Key: "_id", Value: 8}, {Key: "email", Value: "h@x"}, {Key: "org", Value: "s"}, {Key: "badge", Value: 7}, {Key: "active", Value: false}})
		}, ""},
		{"partial: an active badge may not", func() error {
			return ins(bson.D{{Key: "_id", Value: 9}, {Key: "email", Value: "i@x"}, {Key: "org", Value: "t"}, {Key: "badge", Value: 7}, {Key: "active", Value: true}})
		}, "badge_active"},
		{"update onto a taken email", func() error {
			_, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: 4}}, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}})
			return err
		}, "email_1"},
		{"update keeping its own key", func() error {
			_, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}, {Key: "seen", Value: true}}}})
			return err
		}, ""},
		{"replace onto a taken email", func() error {
			_, err := users.ReplaceOne(ctx, bson.D{{Key: "_id", Value: 4}}, bson.D{{Key: "email", Value: "a@x"}, {Key: "org", Value: "z"}})
			return err
		}, "email_1"},
		{"upsert onto a taken email", func() error {
			_, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: 10}}, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}}, options.UpdateOne().SetUpsert(true))
			return err
		}, "email_1"},
		{"findOneAndUpdate onto a taken email", func() error {
			return users.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: 4}}, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}}).Err()
		}, "email_1"},
		{"after a delete the key is free", func() error {
			if _, err := users.DeleteOne(ctx, bson.D{{Key: "_id", Value: 4}}); err != nil {
				return err
			}
			return ins(bson.D{{Key: "_id", Value: 11}, {Key: "email", Value: "d@x"}, {Key: "org", Value: "o"}, {Key: "login", Value: "d"}})
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			if got := dupKeyIndex(err); got != tt.index {
				t.Fatalf("error %v (index %q), want index %q", err, got, tt.index)
			}
		})
	}

	// Only the writes that succeeded reached the change stream.
	want := []string{"insert 1", "insert 4", "insert 5", "insert 7", "insert 8", "update 1", "delete 4", "insert 11"}
	var ops []string
	for len(ops) < len(want) && cs.Next(ctx) {
		ops = append(ops, cs.Current.Lookup("operationType").StringValue()+" "+fmt.Sprint(cs.Current.Lookup("documentKey", "_id").AsInt64()))
	}
	if cs.TryNext(ctx) {
		ops = append(ops, "extra "+cs.Current.Lookup("operationType").StringValue())
	}
	if strings.Join(ops, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", ops, want)
	}

	// Building a unique index over duplicates fails and adds no index.
	_, err = users.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "org", Value: 1}}, Options: options.Index().SetUnique(true)})
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != 11000 {
		t.Errorf("unique index over duplicate orgs: %v, want code 11000", err)
	}
	specs, err := users.Indexes().ListSpecifications(ctx)
	if err != nil || len(specs) != 5 {
		t.Errorf("%d indexes (%v), want 5", len(specs), err)
	}
}
