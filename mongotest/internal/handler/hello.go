package handler

import (
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The server version mongotest reports, and its wire version range. 8.2.1
// rather than 8.2.0: 8.2.0 sent disambiguatedPaths without
// showExpandedEvents, which the spec tests exclude and mongotest does not do.
const (
	serverVersion  = "8.2.1"
	minWireVersion = 0
	maxWireVersion = 27 // MongoDB 8.2
)

var serverVersionArray = bson.A{int32(8), int32(2), int32(1), int32(0)}

// hello answers hello/isMaster. A request carrying topologyVersion and
// maxAwaitTimeMS is a streaming-monitoring request: when the client's
// topology version is current, the reply waits for a change or for
// maxAwaitTimeMS, and with exhaustAllowed the server keeps replying.
func (m *Mux) hello(r *request) Result {
	tv, hasTV := r.cmd.Lookup("topologyVersion").DocumentOK()
	await, hasAwait := bsonutil.AsInt64(r.cmd.Lookup("maxAwaitTimeMS"))
	if !hasTV || !hasAwait {
		return Result{Doc: m.helloReply(r)}
	}
	if await < 0 {
		return m.ErrorResult(codes.Errorf(codes.BadValue, "maxAwaitTimeMS must be a non-negative integer"))
	}
	wait := min(time.Duration(await)*time.Millisecond, maxHelloWait)
	clientPID, _ := tv.Lookup("processId").ObjectIDOK()
	clientCount, _ := tv.Lookup("counter").Int64OK()
	exhaust := r.msg.Flags&wire.ExhaustAllowed != 0

	var next func() Result
	next = func() Result {
		pid, count, wake := m.env.topology.Version()
		if pid == clientPID && count == clientCount {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-wake:
				t.Stop()
			case <-r.c.Ctx.Done():
				t.Stop()
				return Result{CloseConn: true}
			}
		}
		pid, count, _ = m.env.topology.Version()
		clientPID, clientCount = pid, count
		res := Result{Doc: m.helloReply(r)}
		if exhaust {
			res.Next = next
		}
		return res
	}
	return next()
}

// maxHelloWait caps how long a streaming hello waits before answering. A
// real server waits up to the client's maxAwaitTimeMS (the heartbeat
// interval, 10 s by default); mongotest answers at least this often,
// because the Go driver (v2.10.0) can miss the cancellation of a streaming
// check that has just started, and its Disconnect then waits for the
// server's next answer.
const maxHelloWait = 500 * time.Millisecond

func (m *Mux) helloReply(r *request) bsoncore.Document {
	t := m.env.topology
	pid, count, _ := t.Version()
	legacy := r.name != "hello"
	idx, out := bsoncore.AppendDocumentStart(make([]byte, 0, 512))
	out = bsoncore.AppendBooleanElement(out, "helloOk", true)
	if legacy {
		out = bsoncore.AppendBooleanElement(out, "ismaster", true)
	} else {
		out = bsoncore.AppendBooleanElement(out, "isWritablePrimary", true)
	}
	tidx, out := bsoncore.AppendDocumentElementStart(out, "topologyVersion")
	out = bsoncore.AppendObjectIDElement(out, "processId", pid)
	out = bsoncore.AppendInt64Element(out, "counter", count)
	out, _ = bsoncore.AppendDocumentEnd(out, tidx)
	aidx, out := bsoncore.AppendArrayElementStart(out, "hosts")
	out = bsoncore.AppendStringElement(out, "0", t.addr)
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	out = bsoncore.AppendStringElement(out, "setName", t.setName)
	out = bsoncore.AppendInt32Element(out, "setVersion", 1)
	out = bsoncore.AppendBooleanElement(out, "secondary", false)
	out = bsoncore.AppendStringElement(out, "primary", t.addr)
	out = bsoncore.AppendStringElement(out, "me", t.addr)
	out = bsoncore.AppendObjectIDElement(out, "electionId", electionID)
	ct := m.env.engine.ClusterTime()
	lidx, out := bsoncore.AppendDocumentElementStart(out, "lastWrite")
	oidx, out := bsoncore.AppendDocumentElementStart(out, "opTime")
	out = bsoncore.AppendTimestampElement(out, "ts", ct.T, ct.I)
	out = bsoncore.AppendInt64Element(out, "t", 1)
	out, _ = bsoncore.AppendDocumentEnd(out, oidx)
	out = bsoncore.AppendDateTimeElement(out, "lastWriteDate", int64(ct.T)*1000)
	out, _ = bsoncore.AppendDocumentEnd(out, lidx)
	out = bsoncore.AppendInt32Element(out, "maxBsonObjectSize", bsonutil.MaxObjectSize)
	out = bsoncore.AppendInt32Element(out, "maxMessageSizeBytes", wire.MaxMessageSize)
	out = bsoncore.AppendInt32Element(out, "maxWriteBatchSize", wire.MaxWriteBatchSize)
	out = bsoncore.AppendDateTimeElement(out, "localTime", time.Now().UnixMilli())
	out = bsoncore.AppendInt32Element(out, "logicalSessionTimeoutMinutes", 30)
	out = bsoncore.AppendInt32Element(out, "connectionId", int32(r.c.ID))
	out = bsoncore.AppendInt32Element(out, "minWireVersion", minWireVersion)
	out = bsoncore.AppendInt32Element(out, "maxWireVersion", maxWireVersion)
	out = bsoncore.AppendBooleanElement(out, "readOnly", false)
	out = bsoncore.AppendDoubleElement(out, "ok", 1)
	out = m.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// electionID is the constant election id of the single member.
var electionID = bson.ObjectID{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}

func handleBuildInfo(r *request) (bsoncore.Document, error) {
	return marshal(bson.D{
		{Key: "version", Value: serverVersion},
		{Key: "gitVersion", Value: "mongotest"},
		{Key: "versionArray", Value: serverVersionArray},
		{Key: "bits", Value: int32(64)},
		{Key: "debug", Value: false},
		{Key: "maxBsonObjectSize", Value: int32(bsonutil.MaxObjectSize)},
		{Key: "storageEngines", Value: bson.A{"mongotest"}},
		{Key: "modules", Value: bson.A{}},
	})
}

// handleEmptyOK answers ping, logout, saslContinue and refreshSessions,
// which have nothing to do on mongotest.
func handleEmptyOK(r *request) (bsoncore.Document, error) { return nil, nil }

func handleConnectionStatus(r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "authInfo", Value: bson.D{
		{Key: "authenticatedUsers", Value: bson.A{}},
		{Key: "authenticatedUserRoles", Value: bson.A{}},
	}}})
}

func handleHostInfo(t *Topology, r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "system", Value: bson.D{{Key: "hostname", Value: t.addr}}}})
}

func handleGetCmdLineOpts(r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "argv", Value: bson.A{"mongotest"}}, {Key: "parsed", Value: bson.D{}}})
}
