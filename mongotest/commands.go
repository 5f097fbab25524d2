package mongotest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// request is one parsed command.
type request struct {
	c    *conn
	msg  *message
	name string // the command name as sent
	db   string
	cmd  bsoncore.Document
}

// arg returns the command field key, or a zero Value when absent.
func (r *request) arg(key string) bsoncore.Value { return r.cmd.Lookup(key) }

// handlerFunc runs a command and returns the reply fields other than ok,
// operationTime and $clusterTime, which dispatch adds.
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
func (s *Server) dispatch(c *conn, msg *message) result {
	name, ok := commandName(msg.cmd)
	if !ok {
		return s.errorResult(errorf(codeFailedToParse, "empty command document"))
	}
	r := &request{c: c, msg: msg, name: name, cmd: msg.cmd}
	r.db, _ = msg.cmd.Lookup("$db").StringValueOK()
	if r.db == "" {
		return s.errorResult(errorf(codeFailedToParse, "command %s has no $db", name))
	}
	lname := strings.ToLower(name)
	if lname == "hello" || lname == "ismaster" {
		if c.appName == "" {
			c.appName, _ = msg.cmd.Lookup("client", "application", "name").StringValueOK()
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
		return s.errorResult(errorf(codeCommandNotFound, "no such command: '%s'", name))
	}
	body, err := h(s, r)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return s.errorResult(ce)
		}
		if errors.Is(err, errConnClosed) {
			return result{closeConn: true}
		}
		return s.errorResult(&CommandError{Code: codeInternalError, Message: err.Error()})
	}
	return result{doc: s.okReply(body)}
}

// errConnClosed tells dispatch that the connection went away mid-command.
var errConnClosed = errors.New("mongotest: connection closed")

func commandName(cmd bsoncore.Document) (string, bool) {
	if len(cmd) <= 5 {
		return "", false
	}
	e, err := cmd.IndexErr(0)
	if err != nil {
		return "", false
	}
	return e.Key(), true
}

// okReply wraps handler fields in {…, ok: 1, operationTime, $clusterTime}.
func (s *Server) okReply(body bsoncore.Document) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(body)+128))
	if len(body) > 5 {
		out = append(out, body[4:len(body)-1]...)
	}
	out = bsoncore.AppendDoubleElement(out, "ok", 1)
	out = s.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func (s *Server) errorResult(ce *CommandError) result {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendDoubleElement(out, "ok", 0)
	out = bsoncore.AppendStringElement(out, "errmsg", ce.Message)
	out = bsoncore.AppendInt32Element(out, "code", ce.Code)
	out = bsoncore.AppendStringElement(out, "codeName", ce.codeName())
	if len(ce.Labels) > 0 {
		var aidx int32
		aidx, out = bsoncore.AppendArrayElementStart(out, "errorLabels")
		for i, l := range ce.Labels {
			out = bsoncore.AppendStringElement(out, arrayKey(i), l)
		}
		out, _ = bsoncore.AppendArrayEnd(out, aidx)
	}
	if notPrimaryCodes[ce.Code] {
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
