package stream

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// frag builds a fragment n of of with token tok and the given fields; of 0
// builds a whole event.
func frag(t *testing.T, tok string, n, of int32, fields ...bson.E) bson.Raw {
	t.Helper()
	d := bson.D{{Key: "_id", Value: bson.D{{Key: "_data", Value: tok}}}}
	if of > 0 {
		d = append(d, bson.E{Key: "splitEvent", Value: bson.D{{Key: "fragment", Value: n}, {Key: "of", Value: of}}})
	}
	b, err := bson.Marshal(append(d, fields...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReassemblerJoinsInOrder(t *testing.T) {
	var r reassembler
	parts := []bson.Raw{
		frag(t, "8201", 1, 3, bson.E{Key: "operationType", Value: "update"}, bson.E{Key: "a", Value: 1}),
		frag(t, "8202", 2, 3, bson.E{Key: "b", Value: "two"}),
		frag(t, "8203", 3, 3, bson.E{Key: "c", Value: bson.D{{Key: "x", Value: true}}}),
	}
	var joined bson.Raw
	for i, p := range parts {
		got, err := r.add(p, scanEventFields(p))
		if err != nil {
			t.Fatalf("fragment %d: %v", i+1, err)
		}
		if (got != nil) != (i == len(parts)-1) {
			t.Fatalf("fragment %d: joined %v", i+1, got)
		}
		joined = got
	}
	want := frag(t, "8203", 0, 0, bson.E{Key: "operationType", Value: "update"}, bson.E{Key: "a", Value: 1},
		bson.E{Key: "b", Value: "two"}, bson.E{Key: "c", Value: bson.D{{Key: "x", Value: true}}})
	if !bytesEqual(joined, want) {
		t.Errorf("joined %v\nwant   %v", joined, want)
	}
	if r.pending() {
		t.Error("pending after the last fragment")
	}
	if got, err := addDoc(&r, frag(t, "8204", 0, 0)); got != nil || err != nil {
		t.Errorf("a whole event after a joined one: %v, %v", got, err)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestReassemblerRejectsBrokenSequences(t *testing.T) {
	tests := []struct {
		name      string
		docs      func(t *testing.T) []bson.Raw // the last one breaks the sequence
		wantToken string                        // names the event
		wantFrag  int32
		wantWant  int32
	}{
		{"missing fragment", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8201", 1, 3), frag(t, "8203", 3, 3)}
		}, "8201", 3, 2},
		{"repeated fragment", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8201", 1, 2), frag(t, "8201", 1, 2)}
		}, "8201", 1, 2},
		{"out of order: the stream starts at fragment 2", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8202", 2, 2)}
		}, "8202", 2, 1},
		{"another event in the middle", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8201", 1, 2), frag(t, "8299", 0, 0)}
		}, "8201", 0, 2},
		{"fragment count changes", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8201", 1, 2), frag(t, "8202", 2, 3)}
		}, "8201", 2, 2},
		{"fragment beyond its count", func(t *testing.T) []bson.Raw {
			return []bson.Raw{frag(t, "8201", 1, 0+1), frag(t, "8202", 2, 1)}
		}, "8202", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reassembler
			docs := tt.docs(t)
			var err error
			for i, d := range docs {
				var joined bson.Raw
				joined, err = r.add(d, scanEventFields(d))
				if i < len(docs)-1 && err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				if i == len(docs)-1 && joined != nil {
					t.Fatalf("a broken sequence was joined: %v", joined)
				}
			}
			var se *SplitError
			if !errors.As(err, &se) || !errors.Is(err, ErrSplitEvent) {
				t.Fatalf("error %v, want a *SplitError", err)
			}
			if d, _ := se.Token.data(); d != tt.wantToken || se.Fragment != tt.wantFrag || se.Want != tt.wantWant {
				t.Errorf("SplitError %+v: want token %s, fragment %d, want %d", se, tt.wantToken, tt.wantFrag, tt.wantWant)
			}
			if !strings.Contains(err.Error(), tt.wantToken) {
				t.Errorf("message %q does not name the token %s", err, tt.wantToken)
			}
			if r.pending() {
				t.Error("the incomplete event is still held")
			}
		})
	}
}

// addDoc adds doc to r as join does.
func addDoc(r *reassembler, doc []byte) (bson.Raw, error) { return r.add(doc, scanEventFields(doc)) }
