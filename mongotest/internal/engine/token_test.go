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
			"8265A1B2C3000000070200000000FFFF10"},
		{"event of a transaction", Token{time: bson.Timestamp{T: 0x65A1B2C3, I: 7}, txnOp: 0x0102, fragment: wholeEvent, kind: kindEvent},
			"8265A1B2C3000000070200000102FFFF10"},
		{"fragment", Token{time: bson.Timestamp{T: 1, I: 0xFFFFFFFF}, fragment: 3, kind: kindEvent},
			"8200000001FFFFFFFF0200000000000310"},
		{"high-water mark", Token{time: bson.Timestamp{T: 0xFFFFFFFF, I: 0}, txnOp: allOps, fragment: wholeEvent, kind: kindHighWater},
			"82FFFFFFFF0000000002FFFFFFFFFFFF30"},
		{"with uuid", Token{time: bson.Timestamp{T: 2, I: 3}, fragment: wholeEvent, kind: kindInvalidate, uuid: uuid, hasUUID: true},
			"8200000002000000030200000000FFFF20DEADBEEF0102030405060708090A0BFF"},
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

// Tokens sort by _data as their positions do: by time, then by the index
// in a transaction, then by fragment and kind; a high-water mark before a
// position sorts between it and the one before it.
func TestTokenOrder(t *testing.T) {
	t1, t2 := bson.Timestamp{T: 100, I: 0xFFFFFFFF}, bson.Timestamp{T: 101, I: 1}
	ev := func(ts bson.Timestamp, op uint32, frag uint16) Token {
		return Token{time: ts, txnOp: op, fragment: frag, kind: kindEvent}
	}
	hw := func(p position) Token {
		return Token{time: p.time, txnOp: p.op, fragment: wholeEvent, kind: kindHighWater}
	}
	ordered := []Token{
		ev(t1, 0, wholeEvent),
		hw(position{t1, 0}),
		ev(t1, 1, 1),
		ev(t1, 1, wholeEvent),
		{time: t1, txnOp: 1, fragment: wholeEvent, kind: kindInvalidate},
		hw(position{t1, allOps}),
		hw(position{t2, 0}.before()),
		ev(t2, 0, wholeEvent),
		hw(position{t2, 2}.before()),
		ev(t2, 2, wholeEvent),
		ev(t2, 256, wholeEvent),
		hw(position{t2, allOps}),
	}
	for i := 1; i < len(ordered); i++ {
		a, b := ordered[i-1], ordered[i]
		if a.data() >= b.data() {
			t.Errorf("token %d %s does not sort before token %d %s", i-1, a.data(), i, b.data())
		}
		if b.pos().less(a.pos()) {
			t.Errorf("position of token %d %+v is before that of token %d %+v", i, b.pos(), i-1, a.pos())
		}
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
