package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Token is a change-stream resume token: the _id of a change event, or the
// postBatchResumeToken a server reports while a stream is idle. It is a
// value type around the raw token document; the zero Token means "no
// token".
//
// A server's tokens are opaque except for one documented fact: the _data
// string starts with the cluster time of the event, so Token.ClusterTime can
// read it.
type Token struct {
	raw bson.Raw
}

// ErrNoClusterTime is returned by Token.ClusterTime for a token whose _data
// does not start with a cluster time.
var ErrNoClusterTime = errors.New("changestream: resume token carries no cluster time")

// TokenFromRaw returns the token for a raw token document, such as the
// value of ChangeStream.ResumeToken or an event's _id. The document is
// copied. An empty raw gives the zero Token.
func TokenFromRaw(raw bson.Raw) (Token, error) {
	if len(raw) == 0 {
		return Token{}, nil
	}
	if err := raw.Validate(); err != nil {
		return Token{}, fmt.Errorf("changestream: resume token is not a valid BSON document: %w", err)
	}
	if len(raw) <= 5 {
		return Token{}, errors.New("changestream: resume token is an empty document")
	}
	return Token{raw: bytes.Clone(raw)}, nil
}

// Raw returns the token document. It must not be modified.
func (t Token) Raw() bson.Raw { return t.raw }

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return len(t.raw) == 0 }

// Equal reports whether t and u are the same token.
func (t Token) Equal(u Token) bool { return bytes.Equal(t.raw, u.raw) }

// data returns the _data string of a {_data: "<hex>"} token.
func (t Token) data() (string, bool) {
	if t.IsZero() {
		return "", false
	}
	return t.raw.Lookup("_data").StringValueOK()
}

// String returns the token's text form: the _data hex string for the
// tokens servers issue today, or "bson:" and the base64 of the raw document
// for any other shape. ParseToken reads either form back. The zero Token
// gives "".
func (t Token) String() string {
	if t.IsZero() {
		return ""
	}
	if d, ok := t.data(); ok && isOnlyData(t.raw) {
		return d
	}
	return "bson:" + base64.StdEncoding.EncodeToString(t.raw)
}

func isOnlyData(raw bson.Raw) bool {
	elems, err := raw.Elements()
	return err == nil && len(elems) == 1 && elems[0].Key() == "_data"
}

// ParseToken reads a token's text form, as String writes it. The empty
// string gives the zero Token.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "bson:"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return Token{}, fmt.Errorf("changestream: resume token %q: bad base64: %w", abbreviate(s), err)
		}
		t, err := TokenFromRaw(b)
		if err != nil {
			return Token{}, fmt.Errorf("changestream: resume token %q: %w", abbreviate(s), err)
		}
		return t, nil
	}
	if len(s)%2 != 0 {
		return Token{}, fmt.Errorf("changestream: resume token %q: _data must be an even number of hex digits", abbreviate(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return Token{}, fmt.Errorf("changestream: resume token %q: _data is not hex: %w", abbreviate(s), err)
	}
	raw, err := bson.Marshal(bson.D{{Key: "_data", Value: s}})
	if err != nil {
		return Token{}, err
	}
	return Token{raw: raw}, nil
}

func abbreviate(s string) string {
	if len(s) > 48 {
		return s[:45] + "..."
	}
	return s
}

// ClusterTime returns the cluster time encoded at the start of the token's
// _data: a 0x82 byte followed by the timestamp's seconds and increment as
// big-endian 32-bit integers. Tokens without it give ErrNoClusterTime.
func (t Token) ClusterTime() (bson.Timestamp, error) {
	d, ok := t.data()
	if !ok || len(d) < 18 {
		return bson.Timestamp{}, ErrNoClusterTime
	}
	var b [9]byte
	if _, err := hex.Decode(b[:], []byte(d[:18])); err != nil || b[0] != 0x82 {
		return bson.Timestamp{}, ErrNoClusterTime
	}
	return bson.Timestamp{T: binary.BigEndian.Uint32(b[1:5]), I: binary.BigEndian.Uint32(b[5:9])}, nil
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseToken.
func (t *Token) UnmarshalText(b []byte) error {
	p, err := ParseToken(string(b))
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// MarshalJSON writes the token as MongoDB Extended JSON of its document,
// for example {"_data":"8264..."}; the zero Token is null.
func (t Token) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return bson.MarshalExtJSON(t.raw, true, false)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Token) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*t = Token{}
		return nil
	}
	if !json.Valid(b) {
		return errors.New("changestream: resume token JSON is not valid JSON")
	}
	var raw bson.Raw
	if err := bson.UnmarshalExtJSON(b, true, &raw); err != nil {
		return fmt.Errorf("changestream: resume token JSON: %w", err)
	}
	p, err := TokenFromRaw(raw)
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// MarshalBSONValue stores the token as an embedded document (null when zero).
func (t Token) MarshalBSONValue() (byte, []byte, error) {
	if t.IsZero() {
		return byte(bson.TypeNull), nil, nil
	}
	return byte(bson.TypeEmbeddedDocument), bytes.Clone(t.raw), nil
}

// UnmarshalBSONValue reads an embedded document (or null) into the token.
func (t *Token) UnmarshalBSONValue(typ byte, data []byte) error {
	switch bson.Type(typ) {
	case bson.TypeNull, bson.TypeUndefined:
		*t = Token{}
		return nil
	case bson.TypeEmbeddedDocument:
		p, err := TokenFromRaw(data)
		if err != nil {
			return err
		}
		*t = p
		return nil
	}
	return fmt.Errorf("changestream: resume token must be a document, not BSON type %s", bson.Type(typ))
}

// tokenOf wraps a token document this package owns, without copying or
// validating it. raw must not be modified afterwards.
func tokenOf(raw bson.Raw) Token {
	if len(raw) <= 5 {
		return Token{}
	}
	return Token{raw: raw}
}
