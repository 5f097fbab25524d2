package mongotest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// Size limits advertised in hello and enforced on incoming frames.
const (
	maxBSONObjectSize   = 16 * 1024 * 1024
	maxMessageSizeBytes = 48_000_000
	maxWriteBatchSize   = 100_000
	headerLen           = 16
)

// message is one parsed request frame.
type message struct {
	requestID int32
	opcode    wiremessage.OpCode
	// flags of an OP_MSG (checksum bit already handled).
	flags wiremessage.MsgFlag
	// cmd is the command document: the OP_MSG body with its document
	// sequences folded in as arrays, or the OP_QUERY query document.
	cmd bsoncore.Document
	// legacy is true for an OP_QUERY request, which is answered with OP_REPLY.
	legacy bool
}

// errFrame reports a frame that cannot be parsed. When code is non-zero the
// frame was whole and the request can be answered with that error, as a
// real server answers a malformed OP_MSG; otherwise the connection is
// closed.
type errFrame struct {
	reason string
	code   int32
}

// Codes of a real server's OP_MSG and OP_QUERY parse errors.
const (
	codeInvalidBSON               = 22
	codeIllegalOpMsgFlag          = 223
	codeUnsupportedOpQueryCommand = 352
	codeLocation40430             = 40430   // two body sections
	codeLocation40431             = 40431   // a field both in the body and a sequence
	codeLocation40432             = 40432   // unknown section kind
	codeLocation40587             = 40587   // no body section
	codeLocation5739101           = 5739101 // OP_QUERY on a collection
	knownMsgFlags                 = wiremessage.ChecksumPresent | wiremessage.MoreToCome | exhaustAllowedFlag
	requiredMsgFlagBits           = 0xFFFF // flag bits a server must understand
)

// replyError returns the error to answer the request with, or nil when
// the connection must be closed.
func (e *errFrame) replyError() *CommandError {
	if e.code == 0 {
		return nil
	}
	return errorf(e.code, "%s", e.reason)
}

func (e *errFrame) Error() string { return "mongotest: malformed message: " + e.reason }

// readFrame reads one whole wire message from r. The returned slice starts
// with the 16-byte header.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int32(binary.LittleEndian.Uint32(hdr[:]))
	if n < headerLen+4 || n > maxMessageSizeBytes {
		return nil, &errFrame{reason: fmt.Sprintf("message length %d outside [%d, %d]", n, headerLen+4, maxMessageSizeBytes)}
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// parseMessage decodes a frame read by readFrame. Every document is
// validated, so handlers can trust what they are given. On error the
// returned message, when not nil, still tells how to answer (request id,
// opcode): see errFrame.
func parseMessage(frame []byte) (*message, error) {
	length, reqID, _, op, rem, ok := wiremessage.ReadHeader(frame)
	if !ok {
		return nil, &errFrame{reason: "short header"}
	}
	if int(length) != len(frame) {
		return nil, &errFrame{reason: fmt.Sprintf("message length %d but %d bytes", length, len(frame))}
	}
	m := &message{requestID: reqID, opcode: op}
	switch op {
	case wiremessage.OpMsg:
		return m, parseOpMsg(m, rem)
	case wiremessage.OpQuery:
		return m, parseOpQuery(m, rem)
	case wiremessage.OpCompressed:
		return nil, &errFrame{reason: "OP_COMPRESSED received, but no compressor was negotiated"}
	default:
		return nil, &errFrame{reason: fmt.Sprintf("unsupported opcode %d", op)}
	}
}

func parseOpMsg(m *message, rem []byte) error {
	flags, rem, ok := wiremessage.ReadMsgFlags(rem)
	if !ok {
		return &errFrame{reason: "OP_MSG without flags"}
	}
	if flags&wiremessage.ChecksumPresent != 0 {
		if len(rem) < 4 {
			return &errFrame{reason: "OP_MSG checksum flag set but no checksum"}
		}
		rem = rem[:len(rem)-4]
	}
	m.flags = flags
	if unknown := flags &^ knownMsgFlags & requiredMsgFlagBits; unknown != 0 {
		return &errFrame{reason: fmt.Sprintf("Unrecognized required flags in OP_MSG: 0x%x", uint32(unknown)), code: codeIllegalOpMsgFlag}
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
				return &errFrame{reason: "Multiple body sections in message", code: codeLocation40430}
			}
			body, rem, ok = wiremessage.ReadMsgSectionSingleDocument(rem)
			if !ok {
				return &errFrame{reason: "OP_MSG body section is truncated", code: codeInvalidBSON}
			}
			if err := validateDoc(body); err != nil {
				return &errFrame{reason: "OP_MSG body is not valid BSON: " + err.Error(), code: codeInvalidBSON}
			}
		case wiremessage.DocumentSequence:
			id, docs, r, ok := wiremessage.ReadMsgSectionDocumentSequence(rem)
			if !ok {
				return &errFrame{reason: "OP_MSG document sequence is truncated or malformed", code: codeInvalidBSON}
			}
			for _, d := range docs {
				if err := validateDoc(d); err != nil {
					return &errFrame{reason: fmt.Sprintf("OP_MSG sequence %q holds invalid BSON: %v", id, err), code: codeInvalidBSON}
				}
			}
			seqs = append(seqs, sequence{id, docs})
			rem = r
		default:
			return &errFrame{reason: fmt.Sprintf("Unknown section kind %d", st), code: codeLocation40432}
		}
	}
	if body == nil {
		return &errFrame{reason: "OP_MSG messages must have a body", code: codeLocation40587}
	}
	if len(seqs) == 0 {
		m.cmd = body
		return nil
	}
	for i := range seqs {
		for _, o := range seqs[:i] {
			if o.id == seqs[i].id {
				return &errFrame{reason: fmt.Sprintf("Duplicate document sequence: %q", o.id), code: codeLocation40431}
			}
		}
	}
	// Fold each sequence into the command as an array field.
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = append(out, body[4:len(body)-1]...)
	for _, s := range seqs {
		if _, err := body.LookupErr(s.id); err == nil {
			return &errFrame{reason: fmt.Sprintf("Duplicate field between body and document sequence: %q", s.id), code: codeLocation40431}
		}
		var aidx int32
		aidx, out = bsoncore.AppendArrayElementStart(out, s.id)
		for i, d := range s.docs {
			out = bsoncore.AppendDocumentElement(out, arrayKey(i), d)
		}
		out, _ = bsoncore.AppendArrayEnd(out, aidx)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	m.cmd = out
	return nil
}

func parseOpQuery(m *message, rem []byte) error {
	m.legacy = true
	_, rem, ok := wiremessage.ReadQueryFlags(rem)
	if !ok {
		return &errFrame{reason: "OP_QUERY without flags"}
	}
	ns, rem, ok := wiremessage.ReadQueryFullCollectionName(rem)
	if !ok {
		return &errFrame{reason: "OP_QUERY without a collection name"}
	}
	_, rem, ok = wiremessage.ReadQueryNumberToSkip(rem)
	if !ok {
		return &errFrame{reason: "OP_QUERY without numberToSkip"}
	}
	_, rem, ok = wiremessage.ReadQueryNumberToReturn(rem)
	if !ok {
		return &errFrame{reason: "OP_QUERY without numberToReturn"}
	}
	q, _, ok := wiremessage.ReadQueryQuery(rem)
	if !ok {
		return &errFrame{reason: "OP_QUERY query document is truncated", code: codeInvalidBSON}
	}
	if err := validateDoc(q); err != nil {
		return &errFrame{reason: "OP_QUERY query is not valid BSON: " + err.Error(), code: codeInvalidBSON}
	}
	if len(ns) < 5 || ns[len(ns)-5:] != ".$cmd" {
		return &errFrame{reason: fmt.Sprintf("OP_QUERY is no longer supported (query on %q). The client driver may require an upgrade.", ns), code: codeLocation5739101}
	}
	// Legacy commands may wrap the command as {$query: {...}}.
	if inner, ok := q.Lookup("$query").DocumentOK(); ok {
		q = inner
	}
	m.cmd = withDB(q, ns[:len(ns)-5])
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

// appendMsgReply appends an OP_MSG reply carrying doc to dst.
func appendMsgReply(dst []byte, requestID, responseTo int32, flags wiremessage.MsgFlag, doc []byte) []byte {
	return append(appendMsgHeader(dst, requestID, responseTo, flags, len(doc)), doc...)
}

// msgHeaderLen is the length of an OP_MSG reply before its body document:
// the message header, the flags and the section kind.
const msgHeaderLen = headerLen + 4 + 1

// appendMsgHeader appends the first msgHeaderLen bytes of an OP_MSG reply
// whose body document, docLen bytes long, the caller writes next.
func appendMsgHeader(dst []byte, requestID, responseTo int32, flags wiremessage.MsgFlag, docLen int) []byte {
	idx, dst := wiremessage.AppendHeaderStart(dst, requestID, responseTo, wiremessage.OpMsg)
	dst = wiremessage.AppendMsgFlags(dst, flags)
	dst = wiremessage.AppendMsgSectionType(dst, wiremessage.SingleDocument)
	binary.LittleEndian.PutUint32(dst[idx:], uint32(msgHeaderLen+docLen))
	return dst
}

// appendOpReply appends a legacy OP_REPLY carrying doc to dst.
func appendOpReply(dst []byte, requestID, responseTo int32, doc []byte) []byte {
	idx, dst := wiremessage.AppendHeaderStart(dst, requestID, responseTo, wiremessage.OpReply)
	dst = wiremessage.AppendReplyFlags(dst, 0)
	dst = wiremessage.AppendReplyCursorID(dst, 0)
	dst = wiremessage.AppendReplyStartingFrom(dst, 0)
	dst = wiremessage.AppendReplyNumberReturned(dst, 1)
	dst = append(dst, doc...)
	binary.LittleEndian.PutUint32(dst[idx:], uint32(len(dst)-int(idx)))
	return dst
}

// arrayKeys caches the small array indexes as strings.
var arrayKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = strconv.Itoa(i)
	}
	return k
}()

func arrayKey(i int) string {
	if i < len(arrayKeys) {
		return arrayKeys[i]
	}
	return strconv.Itoa(i)
}

// appendArrayKey appends the decimal key of array index i.
func appendArrayKey(dst []byte, i int) []byte {
	if i < len(arrayKeys) {
		return append(dst, arrayKeys[i]...)
	}
	return strconv.AppendInt(dst, int64(i), 10)
}

// appendArrayDocHeader appends the type and key of array element i, a
// document the caller appends next.
func appendArrayDocHeader(dst []byte, i int) []byte {
	dst = append(dst, byte(bsoncore.TypeEmbeddedDocument))
	dst = appendArrayKey(dst, i)
	return append(dst, 0)
}

func init() {
	codeNames[codeInvalidBSON] = "InvalidBSON"
	codeNames[codeIllegalOpMsgFlag] = "IllegalOpMsgFlag"
	codeNames[codeUnsupportedOpQueryCommand] = "UnsupportedOpQueryCommand"
}

// maxBSONDepth is the deepest nesting a real server accepts.
const maxBSONDepth = 200

// validateDoc checks a document and everything nested in it, so that
// handlers can read any field without meeting truncated values.
// bsoncore's Document.Validate checks only the top level.
func validateDoc(d bsoncore.Document) error { return validateNested(d, 0) }

func validateNested(d bsoncore.Document, depth int) error {
	if depth > maxBSONDepth {
		return fmt.Errorf("BSON nesting deeper than %d levels", maxBSONDepth)
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if int(int32(len(d))) != len(d) || int32(binary.LittleEndian.Uint32(d)) != int32(len(d)) {
		return fmt.Errorf("document length %d but %d bytes", int32(binary.LittleEndian.Uint32(d)), len(d))
	}
	elems, err := d.Elements()
	if err != nil {
		return err
	}
	for _, el := range elems {
		v := el.Value()
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
			if err := validateNested(v.Data, depth+1); err != nil {
				return err
			}
		case bsoncore.TypeCodeWithScope:
			_, scope, ok := v.CodeWithScopeOK()
			if !ok {
				return fmt.Errorf("field %q: invalid code with scope", el.Key())
			}
			if err := validateNested(scope, depth+1); err != nil {
				return err
			}
		case bsoncore.TypeString, bsoncore.TypeJavaScript, bsoncore.TypeSymbol:
			if n := len(v.Data); n < 5 || v.Data[n-1] != 0 {
				return fmt.Errorf("field %q: string without its terminating NUL", el.Key())
			}
		case bsoncore.TypeBoolean:
			if v.Data[0] > 1 {
				return fmt.Errorf("field %q: boolean byte %d", el.Key(), v.Data[0])
			}
		}
	}
	return nil
}
