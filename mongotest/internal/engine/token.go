package engine

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// A resume token is {_data: "<hex>"}. Like a real server's KeyString
// token, it starts with 0x82 and the cluster time as 8 big-endian bytes, so
// tokens of one stream sort by _data. What follows is mongotest's own
// encoding, in the order of a real server's fields (resume_token.cpp:
// cluster time, version, token type, txnOpIndex, fromInvalidate, UUID,
// event identifier, fragment number) as far as ordering needs them:
//
//	0x82 | t uint32 | i uint32 | version 0x02 | txnOp uint32 | fragment uint16 | kind byte | uuid [16] (optional)
//
// txnOp is the event's index among the writes of its transaction, which
// share the commit's cluster time (0 outside a transaction; for a
// high-water mark, the last index it stands after, allOps for every write
// of its time). fragment is the 1-based fragment number of a split event,
// or 0xFFFF for a whole event; kind orders the tokens that share a
// position: an event, then its invalidate, then a high-water mark.
type Token struct {
	time     bson.Timestamp
	txnOp    uint32
	fragment uint16
	kind     byte
	uuid     [16]byte
	hasUUID  bool
}

const (
	tokenVersion   = 0x02
	wholeEvent     = 0xFFFF
	kindEvent      = 0x10
	kindInvalidate = 0x20
	kindHighWater  = 0x30
)

// appendRaw appends the token's bytes, before hex encoding.
func (t Token) appendRaw(b []byte) []byte {
	b = append(b, 0x82)
	b = binary.BigEndian.AppendUint32(b, t.time.T)
	b = binary.BigEndian.AppendUint32(b, t.time.I)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint32(b, t.txnOp)
	b = binary.BigEndian.AppendUint16(b, t.fragment)
	b = append(b, t.kind)
	if t.hasUUID {
		b = append(b, t.uuid[:]...)
	}
	return b
}

// maxTokenBytes is the length of the longest token before hex encoding.
const maxTokenBytes = 33

// pos is the change-log position the token stands at.
func (t Token) pos() position { return position{t.time, t.txnOp} }

func (t Token) data() string {
	var raw [maxTokenBytes]byte
	return string(appendHexUpper(nil, t.appendRaw(raw[:0])))
}

const hexDigits = "0123456789ABCDEF"

// appendHexUpper appends b in upper-case hex, as a real server writes _data.
func appendHexUpper(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0F])
	}
	return dst
}

// appendDataElement appends the _data string element without allocating:
// tokens are written once per event served.
func (t Token) appendDataElement(dst []byte) []byte {
	var raw [maxTokenBytes]byte
	b := t.appendRaw(raw[:0])
	dst = bsoncore.AppendHeader(dst, bsoncore.TypeString, "_data")
	dst = binary.LittleEndian.AppendUint32(dst, uint32(2*len(b)+1))
	dst = appendHexUpper(dst, b)
	return append(dst, 0)
}

// appendTo appends the token document {_data: …} as element key.
func (t Token) appendTo(dst []byte, key string) []byte {
	idx, dst := bsoncore.AppendDocumentElementStart(dst, key)
	dst = t.appendDataElement(dst)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

func (t Token) doc() bsoncore.Document {
	idx, dst := bsoncore.AppendDocumentStart(nil)
	dst = t.appendDataElement(dst)
	dst, _ = bsoncore.AppendDocumentEnd(dst, idx)
	return dst
}

// ParseToken reads a resume token document. Errors are the ones a real
// server gives for a malformed token.
func ParseToken(v bsoncore.Value) (Token, error) {
	d, ok := v.DocumentOK()
	if !ok {
		return Token{}, codes.Errorf(codes.TypeMismatch, "resume token must be an object, not %s", v.Type)
	}
	s, ok := d.Lookup("_data").StringValueOK()
	if !ok {
		return Token{}, codes.Errorf(codes.FailedToParse, "Bad resume token: _data of missing or of wrong type. Expected string, got %s", d.Lookup("_data").Type)
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 17 || b[0] != 0x82 || b[9] != tokenVersion {
		return Token{}, codes.Errorf(codes.FailedToParse, "Bad resume token: _data is not a resume token issued by this server: %q", s)
	}
	t := Token{
		time:     bson.Timestamp{T: binary.BigEndian.Uint32(b[1:5]), I: binary.BigEndian.Uint32(b[5:9])},
		txnOp:    binary.BigEndian.Uint32(b[10:14]),
		fragment: binary.BigEndian.Uint16(b[14:16]),
		kind:     b[16],
	}
	switch t.kind {
	case kindEvent, kindInvalidate, kindHighWater:
	default:
		return Token{}, codes.Errorf(codes.FailedToParse, "Bad resume token: unknown token type %#x", t.kind)
	}
	switch len(b) {
	case 17:
	case 33:
		copy(t.uuid[:], b[17:])
		t.hasUUID = true
	default:
		return Token{}, codes.Errorf(codes.FailedToParse, "Bad resume token: _data has %d bytes", len(b))
	}
	return t, nil
}
