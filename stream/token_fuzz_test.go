package stream_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// FuzzParseToken checks that ParseToken never panics, that a failed parse
// returns the zero Token, and that the text form of every token it accepts
// reads back as the same token.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		"",
		realServerToken,
		"82642AD66D00000001",
		"82",
		"8",
		"zz",
		"bson:",
		"bson:EgAAAAJfZGF0YQADAAAAODIAAA==",
		"bson:BQAAAAA=",
		"bson:!!",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := stream.ParseToken(s)
		if err != nil {
			if !tok.IsZero() {
				t.Fatalf("ParseToken(%q) failed with %v but returned %v", s, err, tok.Raw())
			}
			return
		}
		if tok.IsZero() != (s == "") {
			t.Fatalf("ParseToken(%q) gave IsZero %v", s, tok.IsZero())
		}
		checkTokenRoundTrips(t, tok)
	})
}

// FuzzTokenFromRaw checks TokenFromRaw on arbitrary bytes: no panic, and
// every token it accepts survives its text, JSON and BSON forms.
func FuzzTokenFromRaw(f *testing.F) {
	for _, d := range []bson.D{
		{{Key: "_data", Value: realServerToken}},
		{{Key: "_data", Value: ""}},
		{{Key: "_data", Value: "bson:x"}},
		{{Key: "_data", Value: int32(3)}},
		{{Key: "_data", Value: "82"}, {Key: "_typeBits", Value: bson.Binary{Data: []byte{0x40}}}},
	} {
		raw, err := bson.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := stream.TokenFromRaw(b)
		if err != nil {
			if !tok.IsZero() {
				t.Fatalf("TokenFromRaw failed with %v but returned a token", err)
			}
			return
		}
		if tok.IsZero() != (len(b) == 0) {
			t.Fatalf("TokenFromRaw(%x) gave IsZero %v", b, tok.IsZero())
		}
		if !tok.IsZero() && !bytes.Equal(tok.Raw(), b) {
			t.Fatalf("TokenFromRaw(%x) kept %x", b, tok.Raw())
		}
		checkTokenRoundTrips(t, tok)
	})
}

// checkTokenRoundTrips checks the text, BSON and ClusterTime of tok.
func checkTokenRoundTrips(t *testing.T, tok stream.Token) {
	t.Helper()
	s := tok.String()
	back, err := stream.ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken(String()) of %x: %v", tok.Raw(), err)
	}
	if !back.Equal(tok) {
		t.Fatalf("text round trip of %x gave %x (text %q)", tok.Raw(), back.Raw(), s)
	}
	var txt stream.Token
	if err := txt.UnmarshalText([]byte(s)); err != nil || !txt.Equal(tok) {
		t.Fatalf("UnmarshalText(MarshalText()) of %x: %x, %v", tok.Raw(), txt.Raw(), err)
	}

	type holder struct {
		T stream.Token `bson:"t"`
	}
	b, err := bson.Marshal(holder{T: tok})
	if err != nil {
		t.Fatalf("bson.Marshal of %x: %v", tok.Raw(), err)
	}
	var h holder
	if err := bson.Unmarshal(b, &h); err != nil || !h.T.Equal(tok) {
		t.Fatalf("BSON round trip of %x: %x, %v", tok.Raw(), h.T.Raw(), err)
	}

	// JSON goes through Extended JSON, which cannot tell some documents
	// apart (a key "$oid" reads back as an ObjectID): it must not panic,
	// and must round-trip the tokens servers issue.
	j, err := json.Marshal(tok)
	if err == nil {
		var jt stream.Token
		jerr := json.Unmarshal(j, &jt)
		if isSingleString(tok) {
			if jerr != nil || !jt.Equal(tok) {
				t.Fatalf("JSON round trip of %x (%s): %x, %v", tok.Raw(), j, jt.Raw(), jerr)
			}
		}
	}

	if ct, err := tok.ClusterTime(); err == nil {
		if d := tok.Raw().Lookup("_data").StringValue(); len(d) < 18 || (d[0:2] != "82") {
			t.Fatalf("ClusterTime of %q = %v without the 0x82 prefix", d, ct)
		}
	}
}

// isSingleString reports whether tok is {_data: "<string>"} and nothing
// else, the shape of every token a server issues.
func isSingleString(tok stream.Token) bool {
	elems, err := tok.Raw().Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_data" {
		return false
	}
	_, ok := elems[0].Value().StringValueOK()
	return ok
}
