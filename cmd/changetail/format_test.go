package main

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestFormat: each -format preset and a template, over two inserts, an
// update (with its full document looked up) and a delete.
func TestFormat(t *testing.T) {
	tests := []struct {
		name   string
		flags  []string
		want   []string // the lines; "" for a line checked as a whole event
		events bool     // the lines are whole events
	}{
		{"json", []string{"-format", "json"}, nil, true},
		{"default is json", nil, nil, true},
		{"op", []string{"-format", "op"}, []string{
			`insert shop.orders {"_id":1}`,
			`insert shop.orders {"_id":2}`,
			`update shop.orders {"_id":1}`,
			`delete shop.orders {"_id":2}`,
		}, false},
		{"doc", []string{"-format", "doc"}, []string{
			`{"_id":1,"qty":1,"at":{"$date":"2024-05-01T10:00:00Z"}}`,
			`{"_id":2,"qty":2,"at":{"$date":"2024-05-01T10:00:00Z"}}`,
			`{"_id":1,"qty":9,"at":{"$date":"2024-05-01T10:00:00Z"}}`,
			`null`,
		}, false},
		{"doc canonical", []string{"-format", "doc", "-canonical"}, []string{
			`{"_id":{"$numberInt":"1"},"qty":{"$numberLong":"1"},"at":{"$date":{"$numberLong":"1714557600000"}}}`,
			`{"_id":{"$numberInt":"2"},"qty":{"$numberLong":"2"},"at":{"$date":{"$numberLong":"1714557600000"}}}`,
			`{"_id":{"$numberInt":"1"},"qty":{"$numberInt":"9"},"at":{"$date":{"$numberLong":"1714557600000"}}}`,
			`null`,
		}, false},
		{"template", []string{"-format", `%o\t%n\t%k\t%u %% \\`}, []string{
			"insert\tshop.orders\t{\"_id\":1}\tnull % \\",
			"insert\tshop.orders\t{\"_id\":2}\tnull % \\",
			"update\tshop.orders\t{\"_id\":1}\t{\"updatedFields\":{\"qty\":9},\"removedFields\":[],\"truncatedArrays\":[]} % \\",
			"delete\tshop.orders\t{\"_id\":2}\tnull % \\",
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment(t)
			since := d.since()
			d.insert(t, 1, 2)
			if _, err := d.orders.UpdateByID(d.ctx, 1, bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 9}}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := d.orders.DeleteOne(d.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-since", since, "-limit", "4",
				"-full-document", "updateLookup"}, tt.flags...)
			code, stdout, stderr := runTail(d.ctx, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tt.events {
				var ops []string
				for _, ev := range events(t, stdout, false) {
					ops = append(ops, ev.Lookup("operationType").StringValue())
				}
				if strings.Join(ops, " ") != "insert insert update delete" {
					t.Errorf("events %v, want insert insert update delete:\n%s", ops, stdout)
				}
				return
			}
			if want := strings.Join(tt.want, "\n") + "\n"; stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
		})
	}
}

// TestFormatFields: the directives of the event's times and token.
func TestFormatFields(t *testing.T) {
	raw, err := bson.Marshal(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "8266"}}},
		{Key: "operationType", Value: "dropDatabase"},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1714557600, I: 3}},
		{Key: "wallTime", Value: bson.DateTime(1714557600123)},
		{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFormat("%t %w %r %o %n %k %d %b", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.append(nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1714557600.3 2024-05-01T10:00:00.123Z 8266 dropDatabase shop null null null"; string(got) != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
