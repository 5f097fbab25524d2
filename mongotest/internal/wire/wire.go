// Package wire reads and writes the MongoDB wire protocol as mongotest
// serves it: OP_MSG requests and replies, and the OP_QUERY handshake of
// older drivers answered with OP_REPLY.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// Size limits advertised in hello and enforced on incoming frames.
const (
	MaxMessageSize    = 48_000_000
	MaxWriteBatchSize = 100_000
	HeaderLen         = 16
	// ExhaustAllowed is the OP_MSG flag bit with which a client lets a
	// streaming hello answer with moreToCome.
	ExhaustAllowed wiremessage.MsgFlag = 1 << 16
)

// Message is one parsed request frame.
type Message struct {
	RequestID int32
	OpCode    wiremessage.OpCode
	// Flags of an OP_MSG (checksum bit already handled).
	Flags wiremessage.MsgFlag
	// Cmd is the command document: the OP_MSG body with its document
	// sequences folded in as arrays, or the OP_QUERY query document.
	Cmd bsoncore.Document
	// Legacy is true for an OP_QUERY request, which is answered with OP_REPLY.
	Legacy bool
}

// errFrame reports a frame that cannot be parsed. When code is non-zero the
// frame was whole and the request can be answered with that error, as a
// real server answers a malformed OP_MSG; otherwise the connection is
// closed.
type FrameError struct {
	reason string
	code   int32
}

// Codes of a real server's OP_MSG and OP_QUERY parse errors.
const (
	knownMsgFlags       = wiremessage.ChecksumPresent | wiremessage.MoreToCome | ExhaustAllowed
	requiredMsgFlagBits = 0xFFFF // flag bits a server must understand
)

// ReplyError returns the error to answer the request with, or nil when
// the connection must be closed.
func (e *FrameError) ReplyError() *codes.Error {
	if e.code == 0 {
		return nil
	}
	return codes.Errorf(e.code, "%s", e.reason)
}

// Error describes what is malformed.
func (e *FrameError) Error() string { return "mongotest: malformed message: " + e.reason }

// firstChunk is how much of a frame's body ReadFrame buffers before more
// of it has arrived; the buffer then doubles as the body comes in.
const firstChunk = 64 << 10

// Budget bounds the bytes buffered in frames not yet whole, across every
// connection that shares it, so that clients sending frames they do not
// finish cannot make the server hold more than that. A nil *Budget does
// not bound anything.
type Budget struct {
	mu   sync.Mutex
	free int
}

// NewBudget returns a budget of n bytes.
func NewBudget(n int) *Budget { return &Budget{free: n} }

func (b *Budget) take(n int) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

func (b *Budget) give(n int) {
	if b != nil && n > 0 {
		b.mu.Lock()
		b.free += n
		b.mu.Unlock()
	}
}

// ReadFrame reads one whole wire message from r. The returned slice starts
// with the 16-byte header. started, when not nil, is called once the
// header has arrived (the caller may then bound the time the rest takes).
// The body is buffered as it arrives, never more than twice what arrived
// plus 64 KiB, so a header announcing a large frame costs nothing until
// its bytes come; what the buffer holds beyond its first 64 KiB is taken
// from budget while the frame is unfinished, and a frame that would
// exceed the budget fails with a *FrameError.
func ReadFrame(r io.Reader, budget *Budget, started func()) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if started != nil {
		started()
	}
	n := int(int32(binary.LittleEndian.Uint32(hdr[:])))
	if n < HeaderLen+4 || n > MaxMessageSize {
		return nil, &FrameError{reason: fmt.Sprintf("message length %d outside [%d, %d]", n, HeaderLen+4, MaxMessageSize)}
	}
	buf := make([]byte, 4, min(n, firstChunk))
	copy(buf, hdr[:])
	taken := 0
	defer func() { budget.give(taken) }()
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grow := min(n, 2*cap(buf)) - cap(buf)
			if !budget.take(grow) {
				return nil, &FrameError{reason: fmt.Sprintf("a message of %d bytes would exceed the memory the server gives unfinished messages", n)}
			}
			taken += grow
			grown := make([]byte, len(buf), cap(buf)+grow)
			copy(grown, buf)
			buf = grown
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// Parse decodes a frame read by ReadFrame. Every document is validated,
// so handlers can trust what they are given. On error the returned
// message, when not nil, still tells how to answer (request id, opcode):
// see FrameError.
func Parse(frame []byte) (*Message, error) {
	length, reqID, _, op, rem, ok := wiremessage.ReadHeader(frame)
	if !ok {
		return nil, &FrameError{reason: "short header"}
	}
	if int(length) != len(frame) {
		return nil, &FrameError{reason: fmt.Sprintf("message length %d but %d bytes", length, len(frame))}
	}
	m := &Message{RequestID: reqID, OpCode: op}
	switch op {
	case wiremessage.OpMsg:
		return m, parseOpMsg(m, rem)
	case wiremessage.OpQuery:
		return m, parseOpQuery(m, rem)
	case wiremessage.OpCompressed:
		return nil, &FrameError{reason: "OP_COMPRESSED received, but no compressor was negotiated"}
	default:
		return nil, &FrameError{reason: fmt.Sprintf("unsupported opcode %d", op)}
	}
}

func parseOpMsg(m *Message, rem []byte) error {
	flags, rem, ok := wiremessage.ReadMsgFlags(rem)
	if !ok {
		return &FrameError{reason: "OP_MSG without flags"}
	}
	if flags&wiremessage.ChecksumPresent != 0 {
		if len(rem) < 4 {
			return &FrameError{reason: "OP_MSG checksum flag set but no checksum"}
		}
		rem = rem[:len(rem)-4]
	}
	m.Flags = flags
	if unknown := flags &^ knownMsgFlags & requiredMsgFlagBits; unknown != 0 {
		return &FrameError{reason: fmt.Sprintf("Unrecognized required flags in OP_MSG: 0x%x", uint32(unknown)), code: codes.IllegalOpMsgFlag}
	}
	var body bsoncore.Document
	type sequence struct {
		id   string
		docs []bsoncore.Document
	}
	var seqs []sequence
	for len(rem) > 0 {
		var st wiremessage.SectionType
		st, rem, _ = wiremessage.ReadMsgSectionType(rem)
		switch st {
		case wiremessage.SingleDocument:
			if body != nil {
				return &FrameError{reason: "Multiple body sections in message", code: codes.Location40430}
			}
			body, rem, ok = wiremessage.ReadMsgSectionSingleDocument(rem)
			if !ok {
				return &FrameError{reason: "OP_MSG body section is truncated", code: codes.InvalidBSON}
			}
			if err := bsonutil.Validate(body); err != nil {
				return &FrameError{reason: "OP_MSG body is not valid BSON: " + err.Error(), code: codes.InvalidBSON}
			}
		case wiremessage.DocumentSequence:
			id, docs, r, ok := wiremessage.ReadMsgSectionDocumentSequence(rem)
			if !ok {
				return &FrameError{reason: "OP_MSG document sequence is truncated or malformed", code: codes.InvalidBSON}
			}
			for _, d := range docs {
				if err := bsonutil.Validate(d); err != nil {
					return &FrameError{reason: fmt.Sprintf("OP_MSG sequence %q holds invalid BSON: %v", id, err), code: codes.InvalidBSON}
				}
			}
			seqs = append(seqs, sequence{id, docs})
			rem = r
		default:
			return &FrameError{reason: fmt.Sprintf("Unknown section kind %d", st), code: codes.Location40432}
		}
	}
	if body == nil {
		return &FrameError{reason: "OP_MSG messages must have a body", code: codes.Location40587}
	}
	if len(seqs) == 0 {
		m.Cmd = body
		return nil
	}
	for i := range seqs {
		for _, o := range seqs[:i] {
			if o.id == seqs[i].id {
				return &FrameError{reason: fmt.Sprintf("Duplicate document sequence: %q", o.id), code: codes.Location40431}
			}
		}
	}
	// Fold each sequence into the command as an array field.
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = append(out, body[4:len(body)-1]...)
	for _, s := range seqs {
		if _, err := body.LookupErr(s.id); err == nil {
			return &FrameError{reason: fmt.Sprintf("Duplicate field between body and document sequence: %q", s.id), code: codes.Location40431}
		}
		var aidx int32
		aidx, out = bsoncore.AppendArrayElementStart(out, s.id)
		for i, d := range s.docs {
			out = bsoncore.AppendDocumentElement(out, bsonutil.ArrayKey(i), d)
		}
		out, _ = bsoncore.AppendArrayEnd(out, aidx)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	m.Cmd = out
	return nil
}

func parseOpQuery(m *Message, rem []byte) error {
	m.Legacy = true
	_, rem, ok := wiremessage.ReadQueryFlags(rem)
	if !ok {
		return &FrameError{reason: "OP_QUERY without flags"}
	}
	ns, rem, ok := wiremessage.ReadQueryFullCollectionName(rem)
	if !ok {
		return &FrameError{reason: "OP_QUERY without a collection name"}
	}
	_, rem, ok = wiremessage.ReadQueryNumberToSkip(rem)
	if !ok {
		return &FrameError{reason: "OP_QUERY without numberToSkip"}
	}
	_, rem, ok = wiremessage.ReadQueryNumberToReturn(rem)
	if !ok {
		return &FrameError{reason: "OP_QUERY without numberToReturn"}
	}
	q, _, ok := wiremessage.ReadQueryQuery(rem)
	if !ok {
		return &FrameError{reason: "OP_QUERY query document is truncated", code: codes.InvalidBSON}
	}
	if err := bsonutil.Validate(q); err != nil {
		return &FrameError{reason: "OP_QUERY query is not valid BSON: " + err.Error(), code: codes.InvalidBSON}
	}
	if len(ns) < 5 || ns[len(ns)-5:] != ".$cmd" {
		return &FrameError{reason: fmt.Sprintf("OP_QUERY is no longer supported (query on %q). The client driver may require an upgrade.", ns), code: codes.Location5739101}
	}
	// Legacy commands may wrap the command as {$query: {...}}.
	if inner, ok := q.Lookup("$query").DocumentOK(); ok {
		q = inner
	}
	m.Cmd = withDB(q, ns[:len(ns)-5])
	return nil
}

// withDB returns cmd with a $db field, added when absent.
func withDB(cmd bsoncore.Document, db string) bsoncore.Document {
	if _, err := cmd.LookupErr("$db"); err == nil {
		return cmd
	}
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(cmd)+len(db)+10))
	out = append(out, cmd[4:len(cmd)-1]...)
	out = bsoncore.AppendStringElement(out, "$db", db)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// AppendMsgReply appends an OP_MSG reply carrying doc to dst.
func AppendMsgReply(dst []byte, requestID, responseTo int32, flags wiremessage.MsgFlag, doc []byte) []byte {
	return append(AppendMsgHeader(dst, requestID, responseTo, flags, len(doc)), doc...)
}

// MsgHeaderLen is the length of an OP_MSG reply before its body document:
// the message header, the flags and the section kind.
const MsgHeaderLen = HeaderLen + 4 + 1

// AppendMsgHeader appends the first msgHeaderLen bytes of an OP_MSG reply
// whose body document, docLen bytes long, the caller writes next.
func AppendMsgHeader(dst []byte, requestID, responseTo int32, flags wiremessage.MsgFlag, docLen int) []byte {
	idx, dst := wiremessage.AppendHeaderStart(dst, requestID, responseTo, wiremessage.OpMsg)
	dst = wiremessage.AppendMsgFlags(dst, flags)
	dst = wiremessage.AppendMsgSectionType(dst, wiremessage.SingleDocument)
	binary.LittleEndian.PutUint32(dst[idx:], uint32(MsgHeaderLen+docLen))
	return dst
}

// AppendOpReply appends a legacy OP_REPLY carrying doc to dst.
func AppendOpReply(dst []byte, requestID, responseTo int32, doc []byte) []byte {
	idx, dst := wiremessage.AppendHeaderStart(dst, requestID, responseTo, wiremessage.OpReply)
	dst = wiremessage.AppendReplyFlags(dst, 0)
	dst = wiremessage.AppendReplyCursorID(dst, 0)
	dst = wiremessage.AppendReplyStartingFrom(dst, 0)
	dst = wiremessage.AppendReplyNumberReturned(dst, 1)
	dst = append(dst, doc...)
	binary.LittleEndian.PutUint32(dst[idx:], uint32(len(dst)-int(idx)))
	return dst
}
