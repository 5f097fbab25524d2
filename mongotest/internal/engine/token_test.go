package engine

import (
	"fmt"
	"testing"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func TestTokenEncoding(t *testing.T) {
	uuid := [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff}
	tests := []struct {
		name string
		tok  Token
		want string
	}{
		{"event", Token{time: bson.Timestamp{T: 0x65A1B2C3, I: 7}, fragment: wholeEvent, kind: kindEvent},
			"8265A1B2C30000000701FFFF10"},
		{"fragment", Token{time: bson.Timestamp{T: 1, I: 0xFFFFFFFF}, fragment: 3, kind: kindEvent},
			"8200000001FFFFFFFF01000310"},
		{"high-water mark", Token{time: bson.Timestamp{T: 0xFFFFFFFF, I: 0}, fragment: wholeEvent, kind: kindHighWater},
			"82FFFFFFFF0000000001FFFF30"},
		{"with uuid", Token{time: bson.Timestamp{T: 2, I: 3}, fragment: wholeEvent, kind: kindInvalidate, uuid: uuid, hasUUID: true},
			"82000000020000000301FFFF20DEADBEEF0102030405060708090A0BFF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.data(); got != tt.want {
				t.Errorf("data() = %s, want %s", got, tt.want)
			}
			d := tt.tok.doc()
			if err := bsonutil.Validate(d); err != nil {
				t.Fatalf("doc() is not valid BSON: %v", err)
			}
			if got, _ := d.Lookup("_data").StringValueOK(); got != tt.want {
				t.Errorf("doc()._data = %q, want %q", got, tt.want)
			}
			idx, outer := bsoncore.AppendDocumentStart(nil)
			outer = tt.tok.appendTo(outer, "_id")
			outer, _ = bsoncore.AppendDocumentEnd(outer, idx)
			wrapped := bsoncore.Document(outer)
			if got := wrapped.Lookup("_id").Document(); string(got) != string(d) {
				t.Errorf("appendTo wrote %s, doc() is %s", got, d)
			}
			back, err := ParseToken(wrapped.Lookup("_id"))
			if err != nil {
				t.Fatalf("parseToken: %v", err)
			}
			if back != tt.tok {
				t.Errorf("parseToken = %+v, want %+v", back, tt.tok)
			}
		})
	}
}

func TestArrayKey(t *testing.T) {
	for _, i := range []int{0, 9, 10, 1023, 1024, 1025, 99_999, 1 << 20} {
		if got, want := bsonutil.ArrayKey(i), fmt.Sprint(i); got != want {
			t.Errorf("arrayKey(%d) = %q", i, got)
		}
		if got, want := string(bsonutil.AppendArrayKey(nil, i)), fmt.Sprint(i); got != want {
			t.Errorf("appendArrayKey(%d) = %q", i, got)
		}
	}
}
