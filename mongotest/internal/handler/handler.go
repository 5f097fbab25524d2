// Package handler answers mongotest's commands: the Mux parses a request,
// applies the failpoints, finds the command in the one table of
// commands.go and builds the reply. Each command family has its own file;
// a handler is given what it needs (the engine, the failpoints, the
// topology) and never locks the engine, whose methods lock it themselves.
package handler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Mux routes requests to the command handlers.
type Mux struct {
	env env
}

// env is what the handlers are given, each the part it needs (see the
// adapters in commands.go).
type env struct {
	engine     *engine.Engine
	failpoints *failpoint.Set
	topology   *Topology
	// commandNames is the sorted list of commands, for listCommands.
	commandNames []string
}

// NewMux returns a Mux serving commands against e, with the failpoints fp
// and the topology t.
func NewMux(e *engine.Engine, fp *failpoint.Set, t *Topology) *Mux {
	return &Mux{env: env{engine: e, failpoints: fp, topology: t, commandNames: commandNames()}}
}

// Conn is a client connection as the handlers see it. Its owner serves
// one request at a time on it.
type Conn struct {
	// ID numbers the connection (hello's connectionId).
	ID int64
	// Ctx ends when the connection closes: every wait of a command on it
	// (getMore, streaming hello, blockConnection) ends with it.
	Ctx context.Context
	// AppName is the client's application name from its handshake, used
	// by failpoints that name one.
	AppName string
	// Replies holds the buffer of the connection's last reply built in
	// place.
	Replies ReplyBuffers
}

// Result is what a command produces.
type Result struct {
	Doc bsoncore.Document
	// Buf, when set, is the pooled buffer Doc was built in: give it back
	// with Conn.Replies.Return once Doc is written.
	Buf       *[]byte
	CloseConn bool
	// Next, when set, produces the next reply of an exhaust stream; the
	// current reply is then sent with moreToCome.
	Next func() Result
}

// request is one parsed command.
type request struct {
	c    *Conn
	msg  *wire.Message
	name string // the command name as sent
	db   string
	cmd  bsoncore.Document

	// atClusterTime is the time a snapshot read is answered at, which its
	// reply reports.
	atClusterTime *bson.Timestamp

	// buf is the pooled buffer of a reply built in place (see startReply),
	// and built its fields once the handler called finishReply.
	buf   *[]byte
	built []byte
}

// arg returns the command field key, or a zero Value when absent.
func (r *request) arg(key string) bsoncore.Value { return r.cmd.Lookup(key) }

// errConnClosed tells Serve that the connection went away mid-command.
var errConnClosed = errors.New("mongotest: connection closed")

// Serve runs one request, applying failpoints, and builds its reply. An
// OP_QUERY request carries only the handshake on a MongoDB 6.0+ server,
// so other legacy commands get the error a real one gives.
func (m *Mux) Serve(c *Conn, msg *wire.Message) Result {
	name, ok := bsonutil.FirstKey(msg.Cmd)
	if msg.Legacy && !isHelloName(name) {
		return m.ErrorResult(codes.Errorf(codes.UnsupportedOpQueryCommand, "Unsupported OP_QUERY command: %s. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal", name))
	}
	if !ok {
		return m.ErrorResult(codes.Errorf(codes.FailedToParse, "empty command document"))
	}
	r := &request{c: c, msg: msg, name: name, cmd: msg.Cmd}
	if letCommands[name] {
		cmd, err := applyLet(msg.Cmd)
		if err != nil {
			return m.ErrorResult(codes.As(err))
		}
		r.cmd = cmd
	}
	r.db, _ = msg.Cmd.Lookup("$db").StringValueOK()
	if r.db == "" {
		return m.ErrorResult(codes.Errorf(codes.FailedToParse, "command %s has no $db", name))
	}
	if isHelloName(name) {
		if c.AppName == "" {
			c.AppName, _ = msg.Cmd.Lookup("client", "application", "name").StringValueOK()
		}
		return m.hello(r)
	}
	var act *failpoint.Action
	if name != "configureFailPoint" {
		if act = m.env.failpoints.Before(r.failPointCommand()); act != nil {
			if err := act.Apply(c.Ctx); err != nil {
				return m.failure(r, err)
			}
		}
	}
	h := lookup(name)
	if h == nil {
		return m.ErrorResult(codes.Errorf(codes.CommandNotFound, "no such command: '%s'", name))
	}
	body, err := h(&m.env, r)
	if err == nil && r.built != nil {
		out := bsoncore.AppendDoubleElement(r.built, "ok", 1)
		out = m.appendTimes(out)
		out, _ = bsoncore.AppendDocumentEnd(out, 0)
		*r.buf = out
		return Result{Doc: out, Buf: r.buf}
	}
	r.releaseReply()
	if err != nil {
		return m.failure(r, err)
	}
	if wce, labels := act.WriteConcernError(); wce != nil {
		body = withWriteConcernError(body, wce, labels)
	} else if wce := writeConcernError(r); wce != nil {
		body = withWriteConcernError(body, wce, nil)
	}
	return Result{Doc: m.okReply(body)}
}

// failPointCommand describes the request for the failpoints and the
// error labels.
func (r *request) failPointCommand() failpoint.Command {
	return failpoint.Command{
		Name: r.name, AppName: r.c.AppName,
		TxnNumber: r.arg("txnNumber").Type != 0, Autocommit: r.arg("autocommit").Type != 0,
	}
}

// withWriteConcernError adds a writeConcernError (and the labels a real
// server gives it) to a reply body.
func withWriteConcernError(body, wce bsoncore.Document, labels []string) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(nil)
	if len(body) > 5 {
		out = append(out, body[4:len(body)-1]...)
	}
	out = bsoncore.AppendDocumentElement(out, "writeConcernError", wce)
	if len(labels) > 0 {
		out = appendLabels(out, labels)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

func appendLabels(out []byte, labels []string) []byte {
	aidx, out := bsoncore.AppendArrayElementStart(out, "errorLabels")
	for i, l := range labels {
		out = bsoncore.AppendStringElement(out, bsonutil.ArrayKey(i), l)
	}
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	return out
}

// failure is the result of a command that failed with err: an error
// reply, or a closed connection. An error without labels gets those a
// real server adds (TransientTransactionError, RetryableWriteError).
func (m *Mux) failure(r *request, err error) Result {
	if errors.Is(err, errConnClosed) || errors.Is(err, failpoint.ErrCloseConnection) {
		return Result{CloseConn: true}
	}
	ce := codes.As(err)
	if ce.Labels == nil {
		if labels := failpoint.Labels(r.failPointCommand(), ce.Code, 0); labels != nil {
			cp := *ce
			cp.Labels = labels
			ce = &cp
		}
	}
	return m.ErrorResult(ce)
}

func isHelloName(name string) bool {
	return strings.EqualFold(name, "hello") || strings.EqualFold(name, "isMaster")
}

// startReply returns a buffer with the reply document opened, for a
// handler that builds its reply in place. The handler appends its fields
// and returns finishReply's result; Serve then appends ok, operationTime
// and $clusterTime and closes the document without copying it.
func (r *request) startReply() []byte {
	if r.buf == nil {
		r.buf = r.c.Replies.take()
	}
	_, out := bsoncore.AppendDocumentStart((*r.buf)[:0])
	return out
}

// finishReply hands the fields appended to startReply's buffer to Serve.
func (r *request) finishReply(out []byte) (bsoncore.Document, error) {
	*r.buf = out
	r.built = out
	return nil, nil
}

// releaseReply gives back an unused startReply buffer.
func (r *request) releaseReply() {
	if r.buf != nil {
		r.c.Replies.Return(r.buf)
	}
	r.buf, r.built = nil, nil
}

// appendTimesLen is how many bytes appendTimes and the ok field add.
const appendTimesLen = 160

// okReply wraps handler fields in {…, ok: 1, operationTime, $clusterTime}.
func (m *Mux) okReply(body bsoncore.Document) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, len(body)+appendTimesLen))
	if len(body) > 5 {
		out = append(out, body[4:len(body)-1]...)
	}
	out = bsoncore.AppendDoubleElement(out, "ok", 1)
	out = m.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// ErrorResult is the reply {ok: 0, errmsg, code, codeName, errorLabels}
// to a command that failed with ce; a not-primary error carries the
// topologyVersion.
func (m *Mux) ErrorResult(ce *codes.Error) Result {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = bsoncore.AppendDoubleElement(out, "ok", 0)
	out = bsoncore.AppendStringElement(out, "errmsg", ce.Message)
	out = bsoncore.AppendInt32Element(out, "code", ce.Code)
	out = bsoncore.AppendStringElement(out, "codeName", ce.Name())
	if len(ce.Labels) > 0 {
		out = appendLabels(out, ce.Labels)
	}
	if codes.NotPrimary(ce.Code) {
		pid, counter, _ := m.env.topology.Version()
		tidx, o := bsoncore.AppendDocumentElementStart(out, "topologyVersion")
		o = bsoncore.AppendObjectIDElement(o, "processId", pid)
		o = bsoncore.AppendInt64Element(o, "counter", counter)
		out, _ = bsoncore.AppendDocumentEnd(o, tidx)
	}
	out = m.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return Result{Doc: out}
}

// appendTimes adds operationTime and $clusterTime, which every reply of a
// replica-set member carries.
func (m *Mux) appendTimes(out []byte) []byte {
	ct := m.env.engine.ClusterTime()
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
