package stream_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// realServerToken is a resume token a MongoDB server issued: its _data
// starts with 0x82, then 0x642AD66D = 1680529005 seconds and increment
// 0x00000001.
const realServerToken = "82642AD66D000000012B022C0100296E5A10045DC4B11BEA5F4319A8E7CAF46816ED71461E5F6964002B060004"

// tokenOf builds a token from a document, failing the test on error.
func tokenOf(t testing.TB, doc any) stream.Token {
	t.Helper()
	raw, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := stream.TokenFromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustParse(t testing.TB, s string) stream.Token {
	t.Helper()
	tok, err := stream.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bsonForm(t testing.TB, doc any) string {
	t.Helper()
	raw, err := bson.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return "bson:" + base64.StdEncoding.EncodeToString(raw)
}

func TestParseToken(t *testing.T) {
	valid := bson.D{{Key: "_data", Value: realServerToken}, {Key: "extra", Value: int32(1)}}
	docWithTrailer := func() string {
		raw, _ := bson.Marshal(bson.D{{Key: "_data", Value: "82"}})
		return "bson:" + base64.StdEncoding.EncodeToString(append(raw, 0xFF))
	}()
	tests := []struct {
		name     string
		in       string
		wantZero bool
		wantData string // the _data of the parsed token, when it has one
		wantErr  string // a substring of the error; "" means success
	}{
		{name: "real server token", in: realServerToken, wantData: realServerToken},
		{name: "lower-case hex kept as given", in: strings.ToLower(realServerToken), wantData: strings.ToLower(realServerToken)},
		{name: "empty string is the zero token", in: "", wantZero: true},
		{name: "bson form", in: bsonForm(t, valid), wantData: realServerToken},
		{name: "odd number of hex digits", in: "82642", wantErr: "even number of hex digits"},
		{name: "not hex", in: "82642AZZ", wantErr: "not hex"},
		{name: "spaces", in: " 8264 ", wantErr: "resume token"},
		{name: "bson form with bad base64", in: "bson:!!!", wantErr: "bad base64"},
		{name: "bson form with nothing after the prefix", in: "bson:", wantErr: "no document"},
		{name: "bson form with a truncated document", in: "bson:" + base64.StdEncoding.EncodeToString([]byte{20, 0, 0, 0, 2}), wantErr: "not a valid BSON document"},
		{name: "bson form with an empty document", in: bsonForm(t, bson.D{}), wantErr: "empty document"},
		{name: "bson form with bytes after the document", in: docWithTrailer, wantErr: "1 bytes after its document"},
		{name: "long garbage is abbreviated in the error", in: strings.Repeat("zz", 500), wantErr: "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := stream.ParseToken(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseToken(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if !tok.IsZero() {
					t.Errorf("ParseToken failed but returned a token %v", tok)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error message is %d bytes long", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tt.in, err)
			}
			if tok.IsZero() != tt.wantZero {
				t.Fatalf("IsZero = %v, want %v", tok.IsZero(), tt.wantZero)
			}
			if tt.wantData != "" {
				if got := tok.Raw().Lookup("_data").StringValue(); got != tt.wantData {
					t.Errorf("_data = %q, want %q", got, tt.wantData)
				}
			}
		})
	}
}

func TestTokenStringRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		tok        stream.Token
		wantString string // "" means: only check the round trip
		wantPrefix string
	}{
		{name: "zero token", tok: stream.Token{}, wantString: ""},
		{name: "server token is its _data", tok: tokenOf(t, bson.D{{Key: "_data", Value: realServerToken}}), wantString: realServerToken},
		{name: "extra field uses the bson form", tok: tokenOf(t, bson.D{{Key: "_data", Value: "82"}, {Key: "x", Value: int32(1)}}), wantPrefix: "bson:"},
		{name: "no _data uses the bson form", tok: tokenOf(t, bson.D{{Key: "_typeBits", Value: bson.Binary{Data: []byte{1}}}}), wantPrefix: "bson:"},
		{name: "non-string _data", tok: tokenOf(t, bson.D{{Key: "_data", Value: int64(7)}}), wantPrefix: "bson:"},
		// Before the fix these three wrote a text form that read back as
		// another token (the zero token) or not at all.
		{name: "empty _data", tok: tokenOf(t, bson.D{{Key: "_data", Value: ""}}), wantPrefix: "bson:"},
		{name: "_data that is not hex", tok: tokenOf(t, bson.D{{Key: "_data", Value: "bson:AAAA"}}), wantPrefix: "bson:"},
		{name: "_data with an odd length", tok: tokenOf(t, bson.D{{Key: "_data", Value: "826"}}), wantPrefix: "bson:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.tok.String()
			if tt.wantString != "" || tt.tok.IsZero() {
				if s != tt.wantString {
					t.Errorf("String() = %q, want %q", s, tt.wantString)
				}
			}
			if !strings.HasPrefix(s, tt.wantPrefix) {
				t.Errorf("String() = %q, want prefix %q", s, tt.wantPrefix)
			}
			back, err := stream.ParseToken(s)
			if err != nil {
				t.Fatalf("ParseToken(String()) = %v", err)
			}
			if !back.Equal(tt.tok) {
				t.Errorf("ParseToken(%q) = %v, want %v", s, back.Raw(), tt.tok.Raw())
			}
		})
	}
}

func TestTokenClusterTime(t *testing.T) {
	tests := []struct {
		name    string
		tok     stream.Token
		want    bson.Timestamp
		wantErr error
	}{
		{name: "real server token", tok: mustParse(t, realServerToken), want: bson.Timestamp{T: 1680529005, I: 1}},
		{name: "lower-case hex", tok: mustParse(t, strings.ToLower(realServerToken)), want: bson.Timestamp{T: 1680529005, I: 1}},
		{name: "largest values", tok: mustParse(t, "82FFFFFFFFFFFFFFFE01"), want: bson.Timestamp{T: 0xFFFFFFFF, I: 0xFFFFFFFE}},
		{name: "exactly the prefix", tok: mustParse(t, "82000000010000000A"), want: bson.Timestamp{T: 1, I: 10}},
		{name: "no 0x82 prefix", tok: mustParse(t, "2B022C0100296E5A1004"), wantErr: stream.ErrNoClusterTime},
		{name: "prefix cut short", tok: mustParse(t, "82642AD66D000000"), wantErr: stream.ErrNoClusterTime},
		{name: "zero token", tok: stream.Token{}, wantErr: stream.ErrNoClusterTime},
		{name: "no _data", tok: tokenOf(t, bson.D{{Key: "other", Value: "82642AD66D00000001"}}), wantErr: stream.ErrNoClusterTime},
		{name: "_data not a string", tok: tokenOf(t, bson.D{{Key: "_data", Value: int32(1)}}), wantErr: stream.ErrNoClusterTime},
		{name: "_data not hex", tok: tokenOf(t, bson.D{{Key: "_data", Value: "82ZZ2AD66D00000001"}}), wantErr: stream.ErrNoClusterTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tok.ClusterTime()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ClusterTime() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ClusterTime() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTokenFromRaw(t *testing.T) {
	good, _ := bson.Marshal(bson.D{{Key: "_data", Value: "8200"}})
	tests := []struct {
		name     string
		raw      []byte
		wantZero bool
		wantErr  string
	}{
		{name: "nil is the zero token", raw: nil, wantZero: true},
		{name: "a token document", raw: good},
		{name: "empty document", raw: []byte{5, 0, 0, 0, 0}, wantErr: "empty document"},
		{name: "length prefix too large", raw: []byte{9, 0, 0, 0, 0}, wantErr: "not a valid BSON document"},
		{name: "three bytes", raw: []byte{1, 2, 3}, wantErr: "not a valid BSON document"},
		{name: "no terminating zero", raw: append(bytes.Clone(good[:len(good)-1]), 1), wantErr: "not a valid BSON document"},
		{name: "bytes after the document", raw: append(bytes.Clone(good), 0, 0), wantErr: "2 bytes after its document"},
		// bson.Raw.Validate accepts the next three; found by FuzzTokenFromRaw.
		{name: "string without its terminating zero", raw: []byte("\x13\x00\x00\x00\x02_data\x00\x03\x00\x00\x00820\x00"), wantErr: "terminating zero"},
		{name: "string not UTF-8", raw: []byte("\x14\x00\x00\x00\x02_data\x00\x04\x00\x00\x0082\xff\x00\x00"), wantErr: "not valid UTF-8"},
		{name: "garbage inside a nested document", raw: []byte("\x17\x00\x00\x00\x03_data\x00\x0b\x00\x00\x00\x99x\x00abc\x00\x00"), wantErr: "unknown BSON type 0x99"},
		{name: "boolean other than 0 or 1", raw: []byte("\x0d\x00\x00\x00\x08_data\x00\x02\x00"), wantErr: "bad BSON boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := stream.TokenFromRaw(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.IsZero() != tt.wantZero {
				t.Errorf("IsZero = %v, want %v", tok.IsZero(), tt.wantZero)
			}
		})
	}

	t.Run("every BSON type is accepted", func(t *testing.T) {
		doc := bson.D{
			{Key: "double", Value: 1.5}, {Key: "string", Value: "héllo"},
			{Key: "doc", Value: bson.D{{Key: "a", Value: bson.A{int32(1), "x", bson.D{}}}}},
			{Key: "array", Value: bson.A{}}, {Key: "binary", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}},
			{Key: "undefined", Value: bson.Undefined{}}, {Key: "oid", Value: bson.NewObjectID()},
			{Key: "true", Value: true}, {Key: "false", Value: false}, {Key: "date", Value: bson.DateTime(1)},
			{Key: "null", Value: nil}, {Key: "regex", Value: bson.Regex{Pattern: "^a", Options: "i"}},
			{Key: "dbpointer", Value: bson.DBPointer{DB: "db.c", Pointer: bson.NewObjectID()}},
			{Key: "js", Value: bson.JavaScript("f()")}, {Key: "symbol", Value: bson.Symbol("s")},
			{Key: "scope", Value: bson.CodeWithScope{Code: "g()", Scope: bson.D{{Key: "x", Value: int32(1)}}}},
			{Key: "int32", Value: int32(2)}, {Key: "ts", Value: bson.Timestamp{T: 1, I: 2}},
			{Key: "int64", Value: int64(3)}, {Key: "dec", Value: bson.NewDecimal128(1, 2)},
			{Key: "min", Value: bson.MinKey{}}, {Key: "max", Value: bson.MaxKey{}},
		}
		tok := tokenOf(t, doc)
		back, err := stream.ParseToken(tok.String())
		if err != nil || !back.Equal(tok) {
			t.Fatalf("text round trip: %v", err)
		}
	})

	t.Run("the document is copied", func(t *testing.T) {
		raw := bytes.Clone(good)
		tok, err := stream.TokenFromRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-3] = 'F'
		if got := tok.String(); got != "8200" {
			t.Errorf("after changing the input, String() = %q, want %q", got, "8200")
		}
	})
}

func TestTokenIsZeroAndEqual(t *testing.T) {
	a := mustParse(t, realServerToken)
	a2 := mustParse(t, realServerToken)
	lower := mustParse(t, strings.ToLower(realServerToken))
	b := mustParse(t, "82642AD66D00000002")
	tests := []struct {
		name string
		x, y stream.Token
		want bool
	}{
		{name: "same text", x: a, y: a2, want: true},
		{name: "zero and zero", x: stream.Token{}, y: stream.Token{}, want: true},
		{name: "zero and a token", x: stream.Token{}, y: a, want: false},
		{name: "different tokens", x: a, y: b, want: false},
		{name: "hex case is significant", x: a, y: lower, want: false},
		{name: "same token via the bson form", x: a, y: mustParse(t, bsonForm(t, bson.D{{Key: "_data", Value: realServerToken}})), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
			if got := tt.y.Equal(tt.x); got != tt.want {
				t.Errorf("Equal is not symmetric")
			}
		})
	}
	if !(stream.Token{}).IsZero() || a.IsZero() {
		t.Errorf("IsZero: zero token %v, real token %v", (stream.Token{}).IsZero(), a.IsZero())
	}
}

func TestTokenJSON(t *testing.T) {
	type state struct {
		Name  string       `json:"name"`
		Token stream.Token `json:"token"`
	}
	tok := mustParse(t, realServerToken)

	t.Run("round trip in a struct", func(t *testing.T) {
		b, err := json.Marshal(state{Name: "orders", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		want := `{"name":"orders","token":{"_data":"` + realServerToken + `"}}`
		if string(b) != want {
			t.Errorf("json = %s, want %s", b, want)
		}
		var back state
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Token.Equal(tok) {
			t.Errorf("round trip gave %v", back.Token)
		}
	})
	t.Run("zero token is null", func(t *testing.T) {
		b, err := json.Marshal(state{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"name":"x","token":null}`; string(b) != want {
			t.Errorf("json = %s, want %s", b, want)
		}
		back := state{Token: tok}
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Token.IsZero() {
			t.Errorf("null gave %v, want the zero token", back.Token)
		}
	})
	t.Run("token of another shape", func(t *testing.T) {
		odd := tokenOf(t, bson.D{{Key: "_data", Value: "82"}, {Key: "n", Value: int64(1)}})
		b, err := json.Marshal(odd)
		if err != nil {
			t.Fatal(err)
		}
		var back stream.Token
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Equal(odd) {
			t.Errorf("%s gave %v", b, back.Raw())
		}
	})
	bad := []struct{ name, in string }{
		{"array", `[1]`},
		{"string", `"` + realServerToken + `"`},
		{"number", `12`},
		{"empty object", `{}`},
		{"truncated", `{"_data":"82`},
		{"bad extended JSON", `{"_data":{"$timestamp":1}}`},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.name, func(t *testing.T) {
			var s state
			err := json.Unmarshal([]byte(`{"token":`+tt.in+`}`), &s)
			if err == nil {
				t.Fatalf("Unmarshal(%s) succeeded with %v", tt.in, s.Token.Raw())
			}
			if !s.Token.IsZero() {
				t.Errorf("failed Unmarshal left a token %v", s.Token)
			}
		})
	}
}

func TestTokenBSON(t *testing.T) {
	type state struct {
		Name  string       `bson:"name"`
		Token stream.Token `bson:"token"`
	}
	type sparse struct {
		Token stream.Token `bson:"token,omitempty"`
	}
	tok := mustParse(t, realServerToken)

	t.Run("round trip in a struct", func(t *testing.T) {
		b, err := bson.Marshal(state{Name: "orders", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		inner, ok := bson.Raw(b).Lookup("token").DocumentOK()
		if !ok {
			t.Fatalf("token is stored as %s, want an embedded document", bson.Raw(b).Lookup("token").Type)
		}
		if got := inner.Lookup("_data").StringValue(); got != realServerToken {
			t.Errorf("stored _data = %q", got)
		}
		var back state
		if err := bson.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Token.Equal(tok) || back.Name != "orders" {
			t.Errorf("round trip gave %+v", back)
		}
	})
	t.Run("zero token is null, and omitted with omitempty", func(t *testing.T) {
		b, err := bson.Marshal(state{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if typ := bson.Raw(b).Lookup("token").Type; typ != bson.TypeNull {
			t.Errorf("zero token stored as %s, want null", typ)
		}
		back := state{Token: tok}
		if err := bson.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Token.IsZero() {
			t.Errorf("null gave %v", back.Token)
		}
		b, err = bson.Marshal(sparse{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bson.Raw(b).LookupErr("token"); err == nil {
			t.Errorf("omitempty kept the zero token: %v", bson.Raw(b))
		}
	})
	bad := []struct {
		name string
		val  any
		want string
	}{
		{"string", realServerToken, "must be a document"},
		{"int", int32(5), "must be a document"},
		{"empty document", bson.D{}, "empty document"},
		{"array", bson.A{"x"}, "must be a document"},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.name, func(t *testing.T) {
			b, err := bson.Marshal(bson.D{{Key: "token", Value: tt.val}})
			if err != nil {
				t.Fatal(err)
			}
			var s state
			err = bson.Unmarshal(b, &s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Unmarshal error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTokenText(t *testing.T) {
	a := mustParse(t, realServerToken)
	odd := tokenOf(t, bson.D{{Key: "k", Value: "v"}})

	// Token holds a byte slice, so it is not comparable and cannot be a map
	// key; encoding/xml attributes use the text form as JSON map keys would.
	t.Run("XML attributes", func(t *testing.T) {
		type mark struct {
			XMLName xml.Name     `xml:"mark"`
			A       stream.Token `xml:"a,attr"`
			B       stream.Token `xml:"b,attr"`
		}
		b, err := xml.Marshal(mark{A: a, B: odd})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`a="`+realServerToken+`"`)) || !bytes.Contains(b, []byte(`b="bson:`)) {
			t.Errorf("xml = %s, want the text forms as attributes", b)
		}
		var back mark
		if err := xml.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.A.Equal(a) || !back.B.Equal(odd) {
			t.Errorf("round trip gave %v, %v", back.A, back.B)
		}
		if err := xml.Unmarshal([]byte(`<mark a="nothex"></mark>`), &back); err == nil {
			t.Errorf("a bad attribute was accepted")
		}
	})
	t.Run("MarshalText of the zero token", func(t *testing.T) {
		b, err := stream.Token{}.MarshalText()
		if err != nil || len(b) != 0 {
			t.Errorf("MarshalText = %q, %v; want empty", b, err)
		}
		tok := a
		if err := tok.UnmarshalText(nil); err != nil || !tok.IsZero() {
			t.Errorf("UnmarshalText(empty) = %v, %v; want the zero token", tok, err)
		}
	})
	t.Run("flag", func(t *testing.T) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var tok stream.Token
		fs.TextVar(&tok, "resume-after", stream.Token{}, "resume token")
		if err := fs.Parse([]string{"-resume-after", realServerToken}); err != nil {
			t.Fatal(err)
		}
		if !tok.Equal(a) {
			t.Errorf("flag gave %v", tok)
		}
		fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
		fs2.SetOutput(io.Discard)
		fs2.TextVar(&tok, "resume-after", stream.Token{}, "resume token")
		if err := fs2.Parse([]string{"-resume-after", "xyz"}); err == nil {
			t.Errorf("a bad flag value was accepted")
		}
	})
}

// TestTokenFromServer reads the token of a real change event, through the
// driver, and checks that ClusterTime agrees with the event's clusterTime.
func TestTokenFromServer(t *testing.T) {
	client := storeTestClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coll := client.Database(storeTestDB).Collection("token_events")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	var ev struct {
		ID          bson.Raw       `bson:"_id"`
		ClusterTime bson.Timestamp `bson:"clusterTime"`
	}
	if err := cs.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	tok, err := stream.TokenFromRaw(ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := tok.ClusterTime()
	if err != nil {
		t.Fatalf("ClusterTime of %v: %v", tok, err)
	}
	if ct != ev.ClusterTime || ct.IsZero() {
		t.Errorf("token cluster time %+v, event clusterTime %+v", ct, ev.ClusterTime)
	}
	back, err := stream.ParseToken(tok.String())
	if err != nil || !back.Equal(tok) {
		t.Errorf("text round trip of %q: %v, %v", tok.String(), back, err)
	}
	// The token the driver caches is a valid resume point.
	cs2, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetResumeAfter(back.Raw()))
	if err != nil {
		t.Fatalf("resume after the parsed token: %v", err)
	}
	cs2.Close(ctx)
}
