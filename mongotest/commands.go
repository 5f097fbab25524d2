package mongotest

import (
	"errors"
	"fmt"
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// request is one parsed command.
type request struct {
	c    *conn
	msg  *wire.Message
	name string // the command name as sent
	db   string
	Cmd  bsoncore.Document

	// buf is the pooled buffer of a reply built in place (see startReply),
	// and built its fields once the handler called finishReply.
	buf   *[]byte
	built []byte
}

// arg returns the command field key, or a zero Value when absent.
func (r *request) arg(key string) bsoncore.Value { return r.Cmd.Lookup(key) }

// handlerFunc runs a command and returns the reply fields other than ok,
// operationTime and $clusterTime, which dispatch adds. A handler whose
// reply is large (a batch of events) builds it in place instead: it
// appends its fields to r.startReply() and returns r.finishReply(out).
type handlerFunc func(s *Server, r *request) (bsoncore.Document, error)

// commands maps lower-case command names to their handlers. Each file of a
// command family adds its rows in an init function.
var commands = map[string]handlerFunc{}

func register(h handlerFunc, names ...string) {
	for _, n := range names {
		commands[strings.ToLower(n)] = h
	}
}

// dispatch runs one request, applying failpoints, and builds the reply.
func (s *Server) dispatch(c *conn, msg *wire.Message) result {
	name, ok := bsonutil.FirstKey(msg.Cmd)
	if !ok {
		return s.errorResult(codes.Errorf(codes.FailedToParse, "empty command document"))
	}
	r := &request{c: c, msg: msg, name: name, Cmd: msg.Cmd}
	r.db, _ = msg.Cmd.Lookup("$db").StringValueOK()
	if r.db == "" {
		return s.errorResult(codes.Errorf(codes.FailedToParse, "command %s has no $db", name))
	}
	lname := strings.ToLower(name)
	if lname == "hello" || lname == "ismaster" {
		if c.appName == "" {
			c.appName, _ = msg.Cmd.Lookup("client", "application", "name").StringValueOK()
		}
		return s.hello(r)
	}
	if act := s.fp.match(c.appName, name); act != nil {
		if act.blockFor > 0 {
			t := time.NewTimer(act.blockFor)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return result{closeConn: true}
			}
		}
		if act.closeConn {
			return result{closeConn: true}
		}
		if act.err != nil {
			return s.errorResult(act.err)
		}
	}
	h := commands[lname]
	if h == nil {
		return s.errorResult(codes.Errorf(codes.CommandNotFound, "no such command: '%s'", name))
	}
	body, err := h(s, r)
	if err == nil && r.built != nil {
		out := bsoncore.AppendDoubleElement(r.built, "ok", 1)
		out = s.appendTimes(out)
		out, _ = bsoncore.AppendDocumentEnd(out, 0)
		*r.buf = out
		return result{doc: out, buf: r.buf}
	}
	r.releaseReply()
	if err != nil {
		var ce *codes.Error
		if errors.As(err, &ce) {
			return s.errorResult(ce)
		}
		if errors.Is(err, errConnClosed) {
			return result{closeConn: true}
		}
		return s.errorResult(&codes.Error{Code: codes.InternalError, Message: err.Error()})
	}
	return result{doc: s.okReply(body)}
}

// errConnClosed tells dispatch that the connection went away mid-command.
var errConnClosed = errors.New("mongotest: connection closed")

// Replies built in place (batches of events) are rendered once, straight
// into the bytes the connection writes. The buffer is reused: a connection
// keeps the last one while it is busy (see conn.spare), and replyPool holds
// those of idle connections until the garbage collector frees them, so
// that an idle connection pins no memory.
var replyPool sync.Pool // of *[]byte

// maxPooledReply bounds the buffers kept for reuse: a batch reply is at
// most about 16 MiB, which appending may have doubled.
const maxPooledReply = 2*bsonutil.MaxObjectSize + 64<<10

// startReply returns a buffer with the reply document opened, for a
// handler that builds its reply in place. The handler appends its fields
// and returns finishReply's result; dispatch then appends ok,
// operationTime and $clusterTime and closes the document without copying
// it. Calling startReply again starts over in the same buffer.
func (r *request) startReply() []byte {
	if r.buf == nil {
		r.buf = r.c.takeReplyBuf()
	}
	_, out := bsoncore.AppendDocumentStart((*r.buf)[:0])
	return out
}

// finishReply hands the fields appended to startReply's buffer to dispatch.
func (r *request) finishReply(out []byte) (bsoncore.Document, error) {
	*r.buf = out
	r.built = out
	return nil, nil
}

// keepReplyBuf remembers out, a startReply buffer the handler is not done
// with, so that the next startReply reuses its capacity.
func (r *request) keepReplyBuf(out []byte) {
	if r.buf != nil {
		*r.buf = out[:0]
	}
}

// releaseReply gives back an unused startReply buffer.
func (r *request) releaseReply() {
	if r.buf != nil {
		r.c.keepReplyBuf(r.buf)
	}
	r.buf, r.built = nil, nil
}

func putReplyBuf(b *[]byte) {
	if b != nil && cap(*b) <= maxPooledReply {
		*b = (*b)[:0]
		replyPool.Put(b)
	}
}

// appendTimesLen is how many bytes appendTimes and the ok field add.
const appendTimesLen = 160

// okReply wraps handler fields in {…, ok: 1, operationTime, $clusterTime}.
func (s *Server) okReply(body bsoncore.Document) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(body)+appendTimesLen))
	if len(body) > 5 {
		out = append(out, body[4:len(body)-1]...)
	}
	out = bsoncore.AppendDoubleElement(out, "ok", 1)
	out = s.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func (s *Server) errorResult(ce *codes.Error) result {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendDoubleElement(out, "ok", 0)
	out = bsoncore.AppendStringElement(out, "errmsg", ce.Message)
	out = bsoncore.AppendInt32Element(out, "code", ce.Code)
	out = bsoncore.AppendStringElement(out, "codeName", ce.Name())
	if len(ce.Labels) > 0 {
		var aidx int32
		aidx, out = bsoncore.AppendArrayElementStart(out, "errorLabels")
		for i, l := range ce.Labels {
			out = bsoncore.AppendStringElement(out, bsonutil.ArrayKey(i), l)
		}
		out, _ = bsoncore.AppendArrayEnd(out, aidx)
	}
	if codes.NotPrimary(ce.Code) {
		pid, counter, _ := s.topologyVersion()
		tidx, o := bsoncore.AppendDocumentElementStart(out, "topologyVersion")
		o = bsoncore.AppendObjectIDElement(o, "processId", pid)
		o = bsoncore.AppendInt64Element(o, "counter", counter)
		out, _ = bsoncore.AppendDocumentEnd(o, tidx)
	}
	out = s.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return result{doc: out}
}

// appendTimes adds operationTime and $clusterTime, which every reply of a
// replica-set member carries.
func (s *Server) appendTimes(out []byte) []byte {
	ct := s.db.clusterTime()
	out = bsoncore.AppendTimestampElement(out, "operationTime", ct.T, ct.I)
	idx, out := bsoncore.AppendDocumentElementStart(out, "$clusterTime")
	out = bsoncore.AppendTimestampElement(out, "clusterTime", ct.T, ct.I)
	sidx, out := bsoncore.AppendDocumentElementStart(out, "signature")
	out = bsoncore.AppendBinaryElement(out, "hash", 0, zeroHash[:])
	out = bsoncore.AppendInt64Element(out, "keyId", 0)
	out, _ = bsoncore.AppendDocumentEnd(out, sidx)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

var zeroHash [20]byte

// marshal encodes v (usually a bson.D) as a reply body; handlers return
// its result directly.
func marshal(v any) (bsoncore.Document, error) {
	b, err := bson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("mongotest: encode reply: %w", err)
	}
	return b, nil
}
