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
	"unicode/utf8"

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
	// Validate checks only the bytes its length prefix covers; bytes after
	// them would make two equal tokens compare unequal.
	if n := int(binary.LittleEndian.Uint32(raw)); n != len(raw) {
		return Token{}, fmt.Errorf("changestream: resume token has %d bytes after its document", len(raw)-n)
	}
	// Validate does not look inside strings and embedded documents: a
	// string without its terminating zero would read back one byte short.
	if err := checkBSONDocument(raw, 0); err != nil {
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
	if d, ok := t.data(); ok && isHexData(d) && isOnlyData(t.raw) {
		return d
	}
	return "bson:" + base64.StdEncoding.EncodeToString(t.raw)
}

// isHexData reports whether d can be written as the bare hex text form and
// read back by ParseToken as the same token: a non-empty string of an even
// number of hex digits. Any other _data (empty, odd, or not hex) is written
// in the "bson:" form, so that the text form always round-trips.
func isHexData(d string) bool {
	if d == "" || len(d)%2 != 0 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
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
			return Token{}, fmt.Errorf("%w (in %q)", err, abbreviate(s))
		}
		if t.IsZero() {
			return Token{}, fmt.Errorf("changestream: resume token %q: no document after \"bson:\"", abbreviate(s))
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

// maxBSONDepth bounds how deeply checkBSONDocument follows nested
// documents, as a server bounds nesting to 100 levels.
const maxBSONDepth = 100

// checkBSONDocument checks that doc is exactly one well-formed BSON
// document, including every string's terminating zero and UTF-8 and every
// nested document, which bson.Raw.Validate does not check.
func checkBSONDocument(doc []byte, depth int) error {
	if depth > maxBSONDepth {
		return fmt.Errorf("nested deeper than %d levels", maxBSONDepth)
	}
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) != len(doc) || doc[len(doc)-1] != 0 {
		return errors.New("bad document length or terminator")
	}
	rest := doc[4 : len(doc)-1]
	for len(rest) > 0 {
		typ := bson.Type(rest[0])
		end := bytes.IndexByte(rest[1:], 0)
		if end < 0 {
			return errors.New("unterminated element name")
		}
		if !utf8.Valid(rest[1 : 1+end]) {
			return errors.New("element name is not valid UTF-8")
		}
		rest = rest[1+end+1:]
		n, err := bsonValueLen(typ, rest, depth)
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// bsonValueLen checks the value of type typ at the start of b and returns
// its length in bytes.
func bsonValueLen(typ bson.Type, b []byte, depth int) (int, error) {
	fixed := map[bson.Type]int{
		bson.TypeDouble: 8, bson.TypeUndefined: 0, bson.TypeObjectID: 12, bson.TypeDateTime: 8,
		bson.TypeNull: 0, bson.TypeInt32: 4, bson.TypeTimestamp: 8, bson.TypeInt64: 8,
		bson.TypeDecimal128: 16, bson.TypeMinKey: 0, bson.TypeMaxKey: 0,
	}
	if n, ok := fixed[typ]; ok {
		if len(b) < n {
			return 0, fmt.Errorf("BSON %s value cut short", typ)
		}
		return n, nil
	}
	switch typ {
	case bson.TypeString, bson.TypeJavaScript, bson.TypeSymbol:
		return bsonStringLen(b)
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		n, err := bsonLength(b, 5)
		if err != nil {
			return 0, err
		}
		return n, checkBSONDocument(b[:n], depth+1)
	case bson.TypeBinary:
		if len(b) < 5 {
			return 0, errors.New("BSON binary value cut short")
		}
		n := int64(binary.LittleEndian.Uint32(b))
		if n < 0 || n > int64(len(b)-5) || int32(n) < 0 {
			return 0, errors.New("bad BSON binary length")
		}
		return 5 + int(n), nil
	case bson.TypeBoolean:
		if len(b) < 1 || b[0] > 1 {
			return 0, errors.New("bad BSON boolean")
		}
		return 1, nil
	case bson.TypeRegex:
		p := bytes.IndexByte(b, 0)
		if p < 0 {
			return 0, errors.New("unterminated BSON regex pattern")
		}
		o := bytes.IndexByte(b[p+1:], 0)
		if o < 0 {
			return 0, errors.New("unterminated BSON regex options")
		}
		return p + 1 + o + 1, nil
	case bson.TypeDBPointer:
		n, err := bsonStringLen(b)
		if err != nil {
			return 0, err
		}
		if len(b)-n < 12 {
			return 0, errors.New("BSON DBPointer cut short")
		}
		return n + 12, nil
	case bson.TypeCodeWithScope:
		n, err := bsonLength(b, 14)
		if err != nil {
			return 0, err
		}
		s, err := bsonStringLen(b[4:n])
		if err != nil {
			return 0, err
		}
		if err := checkBSONDocument(b[4+s:n], depth+1); err != nil {
			return 0, err
		}
		return n, nil
	}
	return 0, fmt.Errorf("unknown BSON type 0x%02x", byte(typ))
}

// bsonLength reads the int32 length that starts b and checks that it is at
// least min and fits in b.
func bsonLength(b []byte, min int) (int, error) {
	if len(b) < 4 {
		return 0, errors.New("BSON length cut short")
	}
	n := int64(int32(binary.LittleEndian.Uint32(b)))
	if n < int64(min) || n > int64(len(b)) {
		return 0, errors.New("bad BSON length")
	}
	return int(n), nil
}

// bsonStringLen checks a BSON string (int32 length, bytes, a zero byte)
// at the start of b and returns its length in bytes.
func bsonStringLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, errors.New("BSON string cut short")
	}
	n := int64(int32(binary.LittleEndian.Uint32(b)))
	if n < 1 || n > int64(len(b)-4) {
		return 0, errors.New("bad BSON string length")
	}
	if b[4+n-1] != 0 {
		return 0, errors.New("BSON string without its terminating zero")
	}
	// BSON strings are UTF-8; any other bytes would not survive the
	// token's JSON form.
	if !utf8.Valid(b[4 : 4+n-1]) {
		return 0, errors.New("BSON string is not valid UTF-8")
	}
	return 4 + int(n), nil
}

// tokenOf wraps a token document this package owns, without copying or
// validating it. raw must not be modified afterwards.
func tokenOf(raw bson.Raw) Token {
	if len(raw) <= 5 {
		return Token{}
	}
	return Token{raw: raw}
}
