package mongotest

import (
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"strings"
	"time"

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

func init() {
	register(handleBuildInfo, "buildInfo")
	register(handlePing, "ping")
	register(handleEndSessions, "endSessions", "killSessions", "refreshSessions", "abortTransaction", "commitTransaction")
	register(handleGetParameter, "getParameter")
	register(handleEmptyOK, "logout", "saslContinue")
	register(handleConnectionStatus, "connectionStatus")
	register(handleHostInfo, "hostInfo")
	register(handleGetCmdLineOpts, "getCmdLineOpts")
}

// hello answers hello/isMaster. A request carrying topologyVersion and
// maxAwaitTimeMS is a streaming-monitoring request: when the client's
// topology version is current, the reply waits for a change or for
// maxAwaitTimeMS, and with exhaustAllowed the server keeps replying.
func (s *Server) hello(r *request) result {
	tv, hasTV := r.Cmd.Lookup("topologyVersion").DocumentOK()
	await, hasAwait := bsonutil.AsInt64(r.Cmd.Lookup("maxAwaitTimeMS"))
	if !hasTV || !hasAwait {
		return result{doc: s.helloReply(r)}
	}
	if await < 0 {
		return s.errorResult(codes.Errorf(codes.BadValue, "maxAwaitTimeMS must be a non-negative integer"))
	}
	wait := min(time.Duration(await)*time.Millisecond, maxHelloWait)
	clientPID, _ := tv.Lookup("processId").ObjectIDOK()
	clientCount, _ := tv.Lookup("counter").Int64OK()
	exhaust := r.msg.Flags&wire.ExhaustAllowed != 0

	var next func() result
	next = func() result {
		pid, count, wake := s.topologyVersion()
		if pid == clientPID && count == clientCount {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-wake:
				t.Stop()
			case <-r.c.ctx.Done():
				t.Stop()
				return result{closeConn: true}
			}
		}
		pid, count, _ = s.topologyVersion()
		clientPID, clientCount = pid, count
		res := result{doc: s.helloReply(r)}
		if exhaust {
			res.next = next
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

func (s *Server) helloReply(r *request) bsoncore.Document {
	pid, count, _ := s.topologyVersion()
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
	out = bsoncore.AppendStringElement(out, "0", s.addr)
	out, _ = bsoncore.AppendArrayEnd(out, aidx)
	out = bsoncore.AppendStringElement(out, "setName", s.setName)
	out = bsoncore.AppendInt32Element(out, "setVersion", 1)
	out = bsoncore.AppendBooleanElement(out, "secondary", false)
	out = bsoncore.AppendStringElement(out, "primary", s.addr)
	out = bsoncore.AppendStringElement(out, "me", s.addr)
	out = bsoncore.AppendObjectIDElement(out, "electionId", electionID)
	ct := s.db.clusterTime()
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
	out = bsoncore.AppendInt32Element(out, "connectionId", int32(r.c.id))
	out = bsoncore.AppendInt32Element(out, "minWireVersion", minWireVersion)
	out = bsoncore.AppendInt32Element(out, "maxWireVersion", maxWireVersion)
	out = bsoncore.AppendBooleanElement(out, "readOnly", false)
	out = bsoncore.AppendDoubleElement(out, "ok", 1)
	out = s.appendTimes(out)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// electionID is the constant election id of the single member.
var electionID = bson.ObjectID{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}

func handleBuildInfo(s *Server, r *request) (bsoncore.Document, error) {
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

func handlePing(s *Server, r *request) (bsoncore.Document, error) { return nil, nil }

func handleEmptyOK(s *Server, r *request) (bsoncore.Document, error) { return nil, nil }

// handleEndSessions ends the sessions listed ({endSessions: [{id: UUID}, ...]}):
// their retryable-write records are forgotten.
func handleEndSessions(s *Server, r *request) (bsoncore.Document, error) {
	if n := strings.ToLower(r.name); n != "endsessions" && n != "killsessions" {
		return nil, nil // refreshSessions and the transaction commands end nothing
	}
	arr, ok := r.arg(r.name).ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "%s takes an array of session ids", r.name)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "%s: %v", r.name, err)
	}
	keys := make([]string, 0, len(vals))
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			if id := d.Lookup("id"); id.Type != 0 {
				keys = append(keys, string(id.Data))
			}
		}
	}
	s.db.retries.endSessions(keys)
	return nil, nil
}

func handleGetParameter(s *Server, r *request) (bsoncore.Document, error) {
	d := bson.D{}
	if _, err := r.Cmd.LookupErr("featureCompatibilityVersion"); err == nil {
		d = append(d, bson.E{Key: "featureCompatibilityVersion", Value: bson.D{{Key: "version", Value: "8.2"}}})
	}
	return marshal(d)
}

func handleConnectionStatus(s *Server, r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "authInfo", Value: bson.D{
		{Key: "authenticatedUsers", Value: bson.A{}},
		{Key: "authenticatedUserRoles", Value: bson.A{}},
	}}})
}

func handleHostInfo(s *Server, r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "system", Value: bson.D{{Key: "hostname", Value: s.addr}}}})
}

func handleGetCmdLineOpts(s *Server, r *request) (bsoncore.Document, error) {
	return marshal(bson.D{{Key: "argv", Value: bson.A{"mongotest"}}, {Key: "parsed", Value: bson.D{}}})
}
