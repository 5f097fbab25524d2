package stream_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-changestream/changestream/stream"
	gocmp "github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// FuzzEventRoundTrip checks bson.Unmarshal into Event on arbitrary bytes:
// no panic, UnmarshalBSON called directly agrees with it, and for every
// input that decodes, Unmarshal → Marshal →
// Unmarshal gives the same event and Marshal the same bytes, into
// Event[bson.Raw] and Event[bson.D] alike; and wherever the driver's
// canonical Extended JSON keeps the marshalled document whole, the event's
// JSON does too. The corpus is in testdata/fuzz/FuzzEventRoundTrip; the
// manual's events are added when ../shared/conformance is there.
func FuzzEventRoundTrip(f *testing.F) {
	for _, d := range []bson.D{
		{{Key: "_id", Value: bson.D{{Key: "_data", Value: "8264"}}}, {Key: "operationType", Value: "insert"},
			{Key: "fullDocument", Value: bson.D{{Key: "a", Value: int64(1)}}}, {Key: "future", Value: bson.A{}}},
		{{Key: "operationType", Value: "update"}, {Key: "updateDescription", Value: bson.D{
			{Key: "updatedFields", Value: bson.D{}}, {Key: "removedFields", Value: bson.A{"x"}},
			{Key: "truncatedArrays", Value: bson.A{bson.D{{Key: "field", Value: "a"}, {Key: "newSize", Value: 2.5}}}},
			{Key: "more", Value: nil},
		}}, {Key: "fullDocument", Value: nil}, {Key: "fullDocumentBeforeChange", Value: bson.D{}}},
		{{Key: "txnNumber", Value: int32(4)}, {Key: "lsid", Value: bson.D{{Key: "id", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}}},
			{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: 1.0}, {Key: "of", Value: int64(3)}}},
			{Key: "to", Value: bson.D{{Key: "coll", Value: "b"}}}, {Key: "collectionUUID", Value: bson.Binary{Subtype: 2, Data: []byte{1}}},
			{Key: "wallTime", Value: bson.DateTime(-62135596800000)}, {Key: "stateBeforeChange", Value: bson.D{}}},
	} {
		raw, err := bson.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	if files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "conformance", "events", "*.json")); files != nil {
		for _, file := range files {
			js, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			var raw bson.Raw
			if bson.UnmarshalExtJSON(js, false, &raw) == nil {
				f.Add([]byte(raw))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStable[bson.Raw](t, data)
		checkStable[bson.D](t, data)
	})
}

func checkStable[D any](t *testing.T, data []byte) {
	var ev, direct stream.Event[D]
	err := bson.Unmarshal(data, &ev)
	if direct.UnmarshalBSON(data) == nil {
		// data is one whole document: bson.Unmarshal must agree.
		if err != nil {
			t.Fatalf("%T: UnmarshalBSON took it, bson.Unmarshal did not: %v", ev, err)
		}
		if diff := gocmp.Diff(ev, direct); diff != "" {
			t.Fatalf("%T: UnmarshalBSON and bson.Unmarshal differ:\n%s", ev, diff)
		}
	}
	if err != nil {
		return
	}
	b1, err := bson.Marshal(ev)
	if err != nil {
		t.Fatalf("%T decoded but does not marshal: %v", ev, err)
	}
	var again stream.Event[D]
	if err := bson.Unmarshal(b1, &again); err != nil {
		t.Fatalf("%T: Unmarshal of its own Marshal: %v\n%x", ev, err, b1)
	}
	if diff := gocmp.Diff(ev, again); diff != "" {
		t.Fatalf("%T: Unmarshal → Marshal → Unmarshal is not stable (-first +second):\n%s", ev, diff)
	}
	b2, err := bson.Marshal(again)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("%T: Marshal is not stable (%v):\n%x\n%x", ev, err, b1, b2)
	}

	// JSON: only where the driver's own Extended JSON keeps b1 whole.
	ext, err := bson.MarshalExtJSON(bson.Raw(b1), true, false)
	if err != nil {
		return
	}
	var viaExt bson.Raw
	if bson.UnmarshalExtJSON(ext, true, &viaExt) != nil || !bytes.Equal(viaExt, b1) {
		return
	}
	js, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("%T: json.Marshal: %v", ev, err)
	}
	var fromJSON stream.Event[D]
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatalf("%T: json.Unmarshal of its own JSON: %v\n%s", ev, err, js)
	}
	if diff := gocmp.Diff(ev, fromJSON); diff != "" {
		t.Fatalf("%T: JSON round trip differs (-before +after):\n%s", ev, diff)
	}
}

// FuzzEventJSON checks Event's UnmarshalJSON on arbitrary text: no panic,
// and for every input it accepts, MarshalJSON → UnmarshalJSON gives the
// same event and MarshalJSON the same text.
func FuzzEventJSON(f *testing.F) {
	for _, s := range []string{
		`{"_id":{"_data":"82"},"operationType":"insert","fullDocument":{"a":{"$numberLong":"1"}},"x":[]}`,
		`{"operationType":"update","updateDescription":{"updatedFields":{},"removedFields":[],"truncatedArrays":[{"field":"a","newSize":2}]},"fullDocument":null}`,
		`{"txnNumber":4,"wallTime":{"$date":"2023-04-03T13:36:44Z"},"clusterTime":{"$timestamp":{"t":1,"i":2}},"collectionUUID":{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAA==","subType":"04"}}}`,
		`{"ns":{"db":"a"},"to":{"db":"a","coll":"b"},"splitEvent":{"fragment":1,"of":2}}`,
		`null`, `[]`, `{}`, `{"_id":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var ev stream.Event[bson.Raw]
		if err := ev.UnmarshalJSON([]byte(s)); err != nil {
			return
		}
		js, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("decoded but does not marshal: %v", err)
		}
		var again stream.Event[bson.Raw]
		if err := json.Unmarshal(js, &again); err != nil {
			t.Fatalf("json.Unmarshal of its own JSON: %v\n%s", err, js)
		}
		if diff := gocmp.Diff(ev, again); diff != "" {
			t.Fatalf("JSON round trip differs (-first +second):\n%s\n%s", diff, js)
		}
		js2, err := json.Marshal(again)
		if err != nil || !bytes.Equal(js, js2) {
			t.Fatalf("MarshalJSON is not stable (%v):\n%s\n%s", err, js, js2)
		}
	})
}
