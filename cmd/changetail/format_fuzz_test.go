package main

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// FuzzParseFormat: any -format value is either refused with an error or
// prints every event (here one with every field a directive reads, and one
// with none) without a panic or an error; a template of text alone prints
// that text.
func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"json", "op", "doc", "%o %n %k", `%t\t%w\n%r %%`, "%", `\`, "%z", `\q`, "plain", "%e%d%b%u"} {
		f.Add(s)
	}
	full, err := bson.Marshal(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}},
		{Key: "operationType", Value: "update"},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 2}},
		{Key: "wallTime", Value: bson.DateTime(3)},
		{Key: "ns", Value: bson.D{{Key: "db", Value: "d"}, {Key: "coll", Value: "c"}}},
		{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "fullDocument", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "fullDocumentBeforeChange", Value: nil},
		{Key: "updateDescription", Value: bson.D{{Key: "updatedFields", Value: bson.D{}}}},
	})
	if err != nil {
		f.Fatal(err)
	}
	empty, _ := bson.Marshal(bson.D{})
	f.Fuzz(func(t *testing.T, s string) {
		ef, err := parseFormat(s, false)
		if err != nil {
			if ef != nil {
				t.Fatalf("parseFormat(%q) returned a format and an error", s)
			}
			return
		}
		for _, ev := range []bson.Raw{full, empty} {
			if _, err := ef.append(nil, ev); err != nil {
				t.Fatalf("format %q on %v: %v", s, ev, err)
			}
		}
		if !strings.Contains(s, "%") && strings.Contains(s, `\`) {
			got, _ := ef.append(nil, empty)
			want := strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\\`, `\`).Replace(s)
			if string(got) != want && !strings.Contains(s, `\\`) {
				t.Fatalf("template %q printed %q, want %q", s, got, want)
			}
		}
	})
}
