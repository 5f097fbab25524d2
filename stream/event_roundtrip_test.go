package stream_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
	gocmp "github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// user is a struct D for every fullDocument of the manual's example events
// and of the events TestStreamEventsRoundTrip makes: each field a document
// may carry, in the BSON type it has there.
type user struct {
	ID           bson.ObjectID `bson:"_id"`
	Name         string        `bson:"name,omitempty"`
	UserName     string        `bson:"userName,omitempty"`
	Email        string        `bson:"email,omitempty"`
	Team         string        `bson:"team,omitempty"`
	PhoneNumber  string        `bson:"phoneNumber,omitempty"`
	VacationTime []int32       `bson:"vacation_time,omitempty"`
}

// manualEvents returns the manual's example events by file name, as BSON.
func manualEvents(t *testing.T) map[string]bson.Raw {
	t.Helper()
	dir := conformanceDir(t, "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.Raw{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		if name == "sources" {
			continue
		}
		js, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var raw bson.Raw
		if err := bson.UnmarshalExtJSON(js, false, &raw); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[name] = raw
	}
	if len(out) == 0 {
		t.Fatalf("no event documents in %s", dir)
	}
	return out
}

// eventsEqual compares two events with go-cmp: tokens and times by their
// Equal methods, everything else field by field.
func eventsEqual[D any](t *testing.T, what string, want, got stream.Event[D]) {
	t.Helper()
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("%s: events differ (-want +got):\n%s", what, diff)
	}
}

// checkRoundTrip decodes raw into Event[D] with bson.Unmarshal and checks
// that it comes back whole through bson.Marshal, canonical Extended JSON
// (json.Marshal and bson.MarshalExtJSON), relaxed Extended JSON and a
// registry with RegisterEventCodec.
func checkRoundTrip[D any](t *testing.T, raw bson.Raw) stream.Event[D] {
	t.Helper()
	var ev stream.Event[D]
	if err := bson.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if op, _ := raw.Lookup("operationType").StringValueOK(); string(ev.OperationType) != op {
		t.Errorf("OperationType = %q, want %q", ev.OperationType, op)
	}
	enc, err := bson.Marshal(ev)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if diff := diffBSON(raw, enc); diff != "" {
		t.Errorf("bson.Marshal(bson.Unmarshal(raw)) differs (-raw +marshalled):\n%s", diff)
	}
	var again stream.Event[D]
	if err := bson.Unmarshal(enc, &again); err != nil {
		t.Fatalf("Unmarshal of Marshal: %v", err)
	}
	eventsEqual(t, "Unmarshal(Marshal(ev))", ev, again)

	// Canonical Extended JSON, through encoding/json and bson.MarshalExtJSON.
	js, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	ext, err := bson.MarshalExtJSON(ev, true, false)
	if err != nil {
		t.Fatalf("bson.MarshalExtJSON canonical: %v", err)
	}
	if string(js) != string(ext) {
		t.Errorf("json.Marshal and canonical bson.MarshalExtJSON differ:\n%s\n%s", js, ext)
	}
	var fromJSON stream.Event[D]
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	eventsEqual(t, "canonical JSON", ev, fromJSON)
	var fromExt stream.Event[D]
	if err := bson.UnmarshalExtJSON(ext, true, &fromExt); err != nil {
		t.Fatalf("bson.UnmarshalExtJSON canonical: %v", err)
	}
	eventsEqual(t, "canonical bson.UnmarshalExtJSON", ev, fromExt)

	// Relaxed Extended JSON narrows numbers inside documents to int32 when
	// they fit, for the event and for the raw document alike: every field
	// must come through as it does for the raw document.
	relaxed, err := bson.MarshalExtJSON(ev, false, false)
	if err != nil {
		t.Fatalf("bson.MarshalExtJSON relaxed: %v", err)
	}
	var fromRelaxed stream.Event[D]
	if err := bson.UnmarshalExtJSON(relaxed, false, &fromRelaxed); err != nil {
		t.Fatalf("bson.UnmarshalExtJSON relaxed: %v", err)
	}
	rawRelaxed, err := bson.MarshalExtJSON(raw, false, false)
	if err != nil {
		t.Fatal(err)
	}
	var wantRelaxed bson.Raw
	if err := bson.UnmarshalExtJSON(rawRelaxed, false, &wantRelaxed); err != nil {
		t.Fatal(err)
	}
	gotRelaxed, err := bson.Marshal(fromRelaxed)
	if err != nil {
		t.Fatal(err)
	}
	// The named fields are written in the server's types again.
	var wantEv stream.Event[D]
	if err := bson.Unmarshal(wantRelaxed, &wantEv); err != nil {
		t.Fatal(err)
	}
	want, _ := bson.Marshal(wantEv)
	if diff := diffBSON(want, gotRelaxed); diff != "" {
		t.Errorf("relaxed Extended JSON lost or changed fields (-raw through relaxed JSON +event through relaxed JSON):\n%s", diff)
	}
	if again, err := bson.MarshalExtJSON(fromRelaxed, false, false); err != nil || string(again) != string(relaxed) {
		t.Errorf("relaxed Extended JSON is not stable (%v):\n%s\n%s", err, relaxed, again)
	}

	// A registry with the event's codec encodes and decodes the same.
	reg := bson.NewRegistry()
	stream.RegisterEventCodec[D](reg)
	regEnc := marshalWith(t, reg, ev)
	if diff := diffBSON(raw, regEnc); diff != "" {
		t.Errorf("encoding with RegisterEventCodec differs (-raw +encoded):\n%s", diff)
	}
	var fromReg stream.Event[D]
	unmarshalWith(t, reg, regEnc, &fromReg)
	eventsEqual(t, "RegisterEventCodec", ev, fromReg)
	return ev
}

func marshalWith(t *testing.T, reg *bson.Registry, v any) bson.Raw {
	t.Helper()
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.SetRegistry(reg)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encode with registry: %v", err)
	}
	return buf.Bytes()
}

func unmarshalWith(t *testing.T, reg *bson.Registry, raw bson.Raw, v any) {
	t.Helper()
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
	dec.SetRegistry(reg)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode with registry: %v", err)
	}
}

// The manual's example event of every operation type survives
// Unmarshal → Marshal, JSON and a registry, into Event[bson.Raw] and into
// Event[user].
func TestManualEventsRoundTrip(t *testing.T) {
	for name, raw := range manualEvents(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("Event[bson.Raw]", func(t *testing.T) { checkRoundTrip[bson.Raw](t, raw) })
			t.Run("Event[user]", func(t *testing.T) {
				ev := checkRoundTrip[user](t, raw)
				if fd := raw.Lookup("fullDocument"); fd.Type == bson.TypeEmbeddedDocument {
					var want user
					if err := fd.Unmarshal(&want); err != nil {
						t.Fatal(err)
					}
					if ev.FullDocument == nil || !reflect.DeepEqual(*ev.FullDocument, want) {
						t.Errorf("FullDocument = %+v, want %+v", ev.FullDocument, want)
					}
				}
			})
		})
	}
}

// streamTriple watches the same changes as raw events, as Event[bson.Raw]
// and as Event[user].
type streamTriple struct {
	raw   *stream.Stream[bson.Raw]
	ev    *stream.Stream[stream.Event[bson.Raw]]
	typed *stream.Stream[stream.Event[user]]
}

func watchTriple(t *testing.T, f *fixture, target stream.Watcher, opts ...options.Lister[options.ChangeStreamOptions]) streamTriple {
	t.Helper()
	var st streamTriple
	var err error
	if st.raw, err = stream.Watch[bson.Raw](f.ctx, target, nil, nil, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.raw.Close(f.ctx) })
	if st.ev, err = stream.Watch[stream.Event[bson.Raw]](f.ctx, target, nil, nil, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.ev.Close(f.ctx) })
	if st.typed, err = stream.Watch[stream.Event[user]](f.ctx, target, nil, nil, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.typed.Close(f.ctx) })
	return st
}

// next takes the next event of the three streams and checks that each
// Event a Stream delivers marshals back to the raw event, and decodes
// from it with bson.Unmarshal to the same Event.
func (st streamTriple) next(t *testing.T, f *fixture) bson.Raw {
	t.Helper()
	raw, err := st.raw.Next(f.ctx)
	if err != nil {
		t.Fatalf("raw Next: %v", err)
	}
	ev, err := st.ev.Next(f.ctx)
	if err != nil {
		t.Fatalf("Event[bson.Raw] Next: %v", err)
	}
	typed, err := st.typed.Next(f.ctx)
	if err != nil {
		t.Fatalf("Event[user] Next: %v", err)
	}
	op := ev.OperationType
	for what, v := range map[string]any{"Event[bson.Raw]": ev, "Event[user]": typed} {
		enc, err := bson.Marshal(v)
		if err != nil {
			t.Fatalf("%s event, %s: Marshal: %v", op, what, err)
		}
		if diff := diffBSON(raw, enc); diff != "" {
			t.Errorf("%s event, %s from a Stream: Marshal differs from the raw event (-raw +marshalled):\n%s", op, what, diff)
		}
	}
	var fromRaw stream.Event[bson.Raw]
	if err := bson.Unmarshal(raw, &fromRaw); err != nil {
		t.Fatal(err)
	}
	eventsEqual(t, string(op)+" event: bson.Unmarshal against the Stream's", ev, fromRaw)
	var typedFromRaw stream.Event[user]
	if err := bson.Unmarshal(raw, &typedFromRaw); err != nil {
		t.Fatal(err)
	}
	eventsEqual(t, string(op)+" event: bson.Unmarshal against the Stream's", typed, typedFromRaw)
	checkRoundTrip[bson.Raw](t, raw)
	checkRoundTrip[user](t, raw)
	return raw
}

// Every operation of the manual's example events that a replica set can
// perform, done on a real server (mongotest, or MONGODB_URI): the events
// the Streams deliver survive Marshal, Unmarshal and JSON, as raw events,
// Event[bson.Raw] and Event[user]. Streams ask for expanded events, and
// one of them for post- and pre-images, so null images, collectionUUID,
// operationDescription, stateBeforeChange and disambiguatedPaths are
// covered too.
func TestStreamEventsRoundTrip(t *testing.T) {
	manual := manualEvents(t)
	f := newFixture(t)
	expanded := options.ChangeStream().SetShowExpandedEvents(true)
	images := options.ChangeStream().SetShowExpandedEvents(true).
		SetFullDocument(options.UpdateLookup).SetFullDocumentBeforeChange(options.WhenAvailable)
	plain := watchTriple(t, f, f.db, expanded)
	lookup := watchTriple(t, f, f.db, images)

	users := f.db.Collection("users")
	id := bson.NewObjectID()
	must := func(err error) {
		t.Helper()
		skipIfUnsupported(t, f, err)
	}
	must(f.db.CreateCollection(f.ctx, "users"))
	_, err := users.Indexes().CreateOne(f.ctx, mongo.IndexModel{Keys: bson.D{{Key: "name", Value: 1}}})
	must(err)
	days := make([]int32, 40)
	for i := range days {
		days[i] = int32(i)
	}
	_, err = users.InsertOne(f.ctx, user{ID: id, Name: "Alice", UserName: "alice123", PhoneNumber: "555", VacationTime: days})
	must(err)
	_, err = users.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "email", Value: "alice@10gen.com"}}},
		{Key: "$unset", Value: bson.D{{Key: "phoneNumber", Value: ""}}},
	})
	must(err)
	// A modify event (stateBeforeChange); from here on, updates, replaces
	// and deletes have pre-images, and the update above has a null one.
	must(f.db.RunCommand(f.ctx, bson.D{
		{Key: "collMod", Value: "users"},
		{Key: "changeStreamPreAndPostImages", Value: bson.D{{Key: "enabled", Value: true}}},
	}).Err())
	// A pipeline update that shortens an array: truncatedArrays.
	_, err = users.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: id}}, mongo.Pipeline{
		{{Key: "$set", Value: bson.D{{Key: "vacation_time", Value: days[:36]}}}},
	})
	must(err)
	_, err = users.ReplaceOne(f.ctx, bson.D{{Key: "_id", Value: id}}, user{ID: id, Name: "Alice", Team: "replication"})
	must(err)
	// An update whose document is gone before the lookup: fullDocument null.
	_, err = users.UpdateOne(f.ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "team", Value: "query"}}}})
	must(err)
	_, err = users.DeleteOne(f.ctx, bson.D{{Key: "_id", Value: id}})
	must(err)
	must(users.Indexes().DropOne(f.ctx, "name_1"))
	must(f.client.Database("admin").RunCommand(f.ctx, bson.D{
		{Key: "renameCollection", Value: f.db.Name() + ".users"},
		{Key: "to", Value: f.db.Name() + ".people"},
	}).Err())
	must(f.db.Collection("people").Drop(f.ctx))
	must(f.db.Drop(f.ctx))

	seen := map[string]bool{}
	for _, st := range []struct {
		name    string
		streams streamTriple
	}{{"expanded", plain}, {"images", lookup}} {
		for i := 0; ; i++ {
			if i == 30 {
				t.Fatalf("%s stream: no invalidate after %d events", st.name, i)
			}
			raw := st.streams.next(t, f)
			op, _ := raw.Lookup("operationType").StringValueOK()
			name := op
			if op == "update" && raw.Lookup("fullDocument").Type != 0 {
				name = "update-updateLookup"
			}
			seen[name] = true
			elems, _ := raw.Elements()
			for _, el := range elems {
				seen["field "+el.Key()] = true
				if el.Value().Type == bson.TypeNull {
					seen["null "+el.Key()] = true
				}
			}
			if ta, ok := raw.Lookup("updateDescription", "truncatedArrays").ArrayOK(); ok && countFields(bson.Raw(ta)) > 0 {
				seen["truncatedArrays"] = true
			}
			if op == "invalidate" {
				break
			}
		}
	}
	// What the events must have carried for the test to mean something.
	for _, want := range []string{
		"field collectionUUID", "field wallTime", "field operationDescription", "field stateBeforeChange",
		"field to", "field fullDocumentBeforeChange", "null fullDocument", "null fullDocumentBeforeChange",
		"truncatedArrays",
	} {
		if !seen[want] {
			t.Errorf("no event had %s (seen %v)", want, slices.Sorted(mapKeys(seen)))
		}
	}
	for name := range manual {
		switch {
		case name == "shardCollection":
			t.Logf("%s: needs a sharded cluster; covered by bson.Unmarshal only (TestManualEventsRoundTrip)", name)
		case !seen[name]:
			t.Errorf("no %s event came through the streams (seen %v)", name, slices.Sorted(mapKeys(seen)))
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// An event whose D does not decode is a *DecodeError that names what the
// envelope says: operation type, namespace and document key.
func TestDecodeErrorCarriesTheEnvelope(t *testing.T) {
	f := newFixture(t)
	s := watchOrders(t, f)
	if _, err := f.coll.InsertOne(f.ctx, bson.D{{Key: "_id", Value: 7}, {Key: "qty", Value: "many"}}); err != nil {
		t.Fatal(err)
	}
	f.insert(t, Order{ID: 8, Item: "tea"})
	_, err := s.Next(f.ctx)
	var de *stream.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Next: %v, want a *DecodeError", err)
	}
	checkDecodeError(t, de, stream.OpInsert, stream.Namespace{DB: f.db.Name(), Coll: "orders"}, bson.D{{Key: "_id", Value: int32(7)}})
	if de.Token.IsZero() || !strings.Contains(de.Error(), "insert event") || !strings.Contains(de.Error(), f.db.Name()+".orders") {
		t.Errorf("token %v, message %q", de.Token, de.Error())
	}
	var envelope stream.Event[bson.Raw]
	if err := bson.Unmarshal(de.Raw, &envelope); err != nil || envelope.FullDocument == nil || !envelope.ID.Equal(de.Token) {
		t.Errorf("the envelope of DecodeError.Raw: %+v, %v", envelope, err)
	}
	if ev, err := s.Next(f.ctx); err != nil || ev.FullDocument.ID != 8 {
		t.Errorf("after the DecodeError: %+v, %v; want order 8", ev, err)
	}
}

func checkDecodeError(t *testing.T, de *stream.DecodeError, op stream.OperationType, ns stream.Namespace, key bson.D) {
	t.Helper()
	if de.OperationType != op || de.NS != ns {
		t.Errorf("DecodeError says %q on %v, want %q on %v", de.OperationType, de.NS, op, ns)
	}
	var want bson.Raw
	if key != nil {
		want = mustRaw(t, key)
	}
	if diff := diffBSON(want, de.DocumentKey); diff != "" || (key == nil) != (de.DocumentKey == nil) {
		t.Errorf("DecodeError.DocumentKey = %v, want %v\n%s", de.DocumentKey, want, diff)
	}
}

// bson.Unmarshal into an Event reports what it can still read of a
// broken envelope.
func TestUnmarshalEventDecodeError(t *testing.T) {
	key := bson.D{{Key: "_id", Value: int32(3)}}
	tests := []struct {
		name string
		doc  bson.D
		op   stream.OperationType
		ns   stream.Namespace
		key  bson.D
	}{
		{"D does not decode", bson.D{
			{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}}, {Key: "operationType", Value: "insert"},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "orders"}}},
			{Key: "documentKey", Value: key}, {Key: "fullDocument", Value: bson.D{{Key: "qty", Value: "many"}}},
		}, stream.OpInsert, stream.Namespace{DB: "shop", Coll: "orders"}, key},
		{"clusterTime of the wrong type", bson.D{
			{Key: "operationType", Value: "delete"}, {Key: "clusterTime", Value: "now"},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "orders"}}}, {Key: "documentKey", Value: key},
		}, stream.OpDelete, stream.Namespace{DB: "shop", Coll: "orders"}, key},
		{"ns of the wrong type", bson.D{
			{Key: "operationType", Value: "drop"}, {Key: "ns", Value: "shop.orders"},
		}, stream.OpDrop, stream.Namespace{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev stream.Event[Order]
			err := bson.Unmarshal(mustRaw(t, tt.doc), &ev)
			var de *stream.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Unmarshal: %v, want a *DecodeError", err)
			}
			checkDecodeError(t, de, tt.op, tt.ns, tt.key)
		})
	}
	var ev stream.Event[Order]
	if err := bson.Unmarshal(mustRaw(t, bson.D{{Key: "e", Value: "x"}}), &struct {
		E *stream.Event[Order] `bson:"e"`
	}{&ev}); err == nil {
		t.Error("a string decoded into an Event")
	}
}

// Event.UnmarshalJSON refuses what is not an event, with an error.
func TestUnmarshalEventJSONErrors(t *testing.T) {
	for _, js := range []string{`[1]`, `{"_id": 1}`, `{"fullDocument": 3}`, `{`, `"x"`} {
		var ev stream.Event[bson.Raw]
		if err := json.Unmarshal([]byte(js), &ev); err == nil {
			t.Errorf("json.Unmarshal(%s) = nil error", js)
		}
	}
	var ev stream.Event[bson.Raw]
	if err := json.Unmarshal([]byte(`null`), &ev); err != nil || !ev.ID.IsZero() {
		t.Errorf("null: %v, %+v", err, ev)
	}
}

// Marshal refuses fields that are not documents, and never writes a
// field twice.
func TestMarshalEventChecksFields(t *testing.T) {
	if _, err := bson.Marshal(stream.Event[bson.Raw]{DocumentKey: bson.Raw{1, 2, 3}}); err == nil {
		t.Error("marshalled a documentKey that is not a document")
	}
	bad := bson.Raw{1}
	if _, err := bson.Marshal(stream.Event[bson.Raw]{FullDocument: &bad}); err == nil {
		t.Error("marshalled a fullDocument that is not a document")
	}
	if _, err := bson.Marshal(stream.Event[int]{FullDocument: new(int)}); err == nil {
		t.Error("marshalled a D that is not a document")
	}
	doc := mustRaw(t, bson.D{{Key: "a", Value: 1}})
	ev := stream.Event[bson.Raw]{
		OperationType: stream.OpUpdate,
		FullDocument:  &doc,
		Extra:         mustRaw(t, bson.D{{Key: "fullDocument", Value: nil}, {Key: "operationType", Value: "x"}, {Key: "future", Value: 1}}),
	}
	b, err := bson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := mustRaw(t, bson.D{{Key: "operationType", Value: "update"}, {Key: "fullDocument", Value: bson.D{{Key: "a", Value: 1}}}, {Key: "future", Value: 1}})
	if diff := diffBSON(want, b); diff != "" {
		t.Errorf("Extra fields named above were written again (-want +got):\n%s", diff)
	}
}

// Empty arrays stay empty arrays and a missing one stays missing; a null
// image stays null.
func TestEmptyAndNullFieldsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		doc  bson.D
	}{
		{"empty arrays", bson.D{{Key: "operationType", Value: "update"}, {Key: "updateDescription", Value: bson.D{
			{Key: "updatedFields", Value: bson.D{}}, {Key: "removedFields", Value: bson.A{}}, {Key: "truncatedArrays", Value: bson.A{}},
		}}}},
		{"no arrays", bson.D{{Key: "operationType", Value: "update"}, {Key: "updateDescription", Value: bson.D{
			{Key: "updatedFields", Value: bson.D{{Key: "a", Value: 1}}},
		}}}},
		{"null images", bson.D{{Key: "operationType", Value: "update"}, {Key: "fullDocument", Value: nil}, {Key: "fullDocumentBeforeChange", Value: nil}}},
		{"updateDescription extra", bson.D{{Key: "updateDescription", Value: bson.D{{Key: "future", Value: int64(1)}}}}},
		{"every named field", bson.D{
			{Key: "_id", Value: bson.D{{Key: "_data", Value: "82"}}},
			{Key: "operationType", Value: "update"},
			{Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 2}},
			{Key: "collectionUUID", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}},
			{Key: "wallTime", Value: bson.DateTime(1000)},
			{Key: "txnNumber", Value: int64(5)},
			{Key: "lsid", Value: bson.D{{Key: "id", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}, {Key: "uid", Value: bson.Binary{Data: make([]byte, 32)}}}},
			{Key: "ns", Value: bson.D{{Key: "db", Value: "a"}, {Key: "coll", Value: "b"}}},
			{Key: "to", Value: bson.D{{Key: "db", Value: "a"}, {Key: "coll", Value: "c"}}},
			{Key: "nsType", Value: "timeseries"},
			{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}, {Key: "shard", Value: int64(2)}}},
			{Key: "updateDescription", Value: bson.D{
				{Key: "updatedFields", Value: bson.D{{Key: "a.0", Value: 1}}},
				{Key: "removedFields", Value: bson.A{"b", "c"}},
				{Key: "truncatedArrays", Value: bson.A{bson.D{{Key: "field", Value: "d"}, {Key: "newSize", Value: int32(1)}}}},
				{Key: "disambiguatedPaths", Value: bson.D{{Key: "a.0", Value: bson.A{"a", int32(0)}}}},
			}},
			{Key: "fullDocument", Value: bson.D{{Key: "x", Value: 1}}},
			{Key: "fullDocumentBeforeChange", Value: bson.D{{Key: "x", Value: 0}}},
			{Key: "operationDescription", Value: bson.D{{Key: "o", Value: 1}}},
			{Key: "stateBeforeChange", Value: bson.D{{Key: "collectionOptions", Value: bson.D{{Key: "validationLevel", Value: "strict"}}}}},
			{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: int32(1)}, {Key: "of", Value: int32(2)}}},
			{Key: "future", Value: bson.A{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustRaw(t, tt.doc)
			ev := checkRoundTrip[bson.Raw](t, raw)
			if ev.UpdateDescription != nil {
				var u stream.UpdateDescription
				ud := raw.Lookup("updateDescription").Document()
				if err := bson.Unmarshal(ud, &u); err != nil {
					t.Fatal(err)
				}
				b, err := bson.Marshal(u)
				if err != nil {
					t.Fatal(err)
				}
				if diff := diffBSON(ud, b); diff != "" {
					t.Errorf("UpdateDescription alone (-raw +marshalled):\n%s", diff)
				}
			}
		})
	}
}

// UnmarshalBSON called directly takes one whole document, nothing more or
// less.
func TestUnmarshalBSONTakesOneDocument(t *testing.T) {
	doc := mustRaw(t, bson.D{{Key: "operationType", Value: "insert"}})
	for name, b := range map[string][]byte{
		"trailing bytes": append(bytes.Clone(doc), 5, 0, 0, 0, 0),
		"cut short":      doc[:len(doc)-1],
		"empty":          nil,
	} {
		var ev stream.Event[bson.Raw]
		if err := ev.UnmarshalBSON(b); err == nil {
			t.Errorf("%s: Event.UnmarshalBSON accepted it", name)
		}
		var u stream.UpdateDescription
		if err := u.UnmarshalBSON(b); err == nil {
			t.Errorf("%s: UpdateDescription.UnmarshalBSON accepted it", name)
		}
	}
}
