package handler

import (
	"os"
	"strings"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Server administration commands that test harnesses send at setup.

// handleKillAllSessions ({killAllSessions: [users]}) ends every session:
// their open transactions are aborted and the cursors they opened are
// killed, as on a real server.
func handleKillAllSessions(e *engine.Engine, r *request) (bsoncore.Document, error) {
	if v := r.arg(r.name); v.Type != 0 && v.Type != bsoncore.TypeArray {
		return nil, codes.Errorf(codes.TypeMismatch, "BSON field 'killAllSessions.killAllSessions' is the wrong type '%s', expected type 'array'", v.Type)
	}
	e.KillAllSessions()
	return nil, nil
}

// handleServerStatus answers serverStatus with the fields of a real
// server that mongotest knows: who it is and how long it has run.
func handleServerStatus(t *Topology, r *request) (bsoncore.Document, error) {
	up := time.Since(t.started)
	return marshal(bson.D{
		{Key: "host", Value: t.addr},
		{Key: "version", Value: serverVersion},
		{Key: "process", Value: "mongod"},
		{Key: "pid", Value: int64(os.Getpid())},
		{Key: "uptime", Value: up.Seconds()},
		{Key: "uptimeMillis", Value: up.Milliseconds()},
		{Key: "uptimeEstimate", Value: int64(up.Seconds())},
		{Key: "localTime", Value: bson.NewDateTimeFromTime(time.Now())},
		{Key: "repl", Value: bson.D{
			{Key: "setName", Value: t.setName},
			{Key: "isWritablePrimary", Value: true},
			{Key: "secondary", Value: false},
			{Key: "hosts", Value: bson.A{t.addr}},
			{Key: "primary", Value: t.addr},
			{Key: "me", Value: t.addr},
		}},
	})
}

// serverParameters are the parameters getParameter reports: those
// drivers and their test runners read.
func serverParameters() bson.D {
	return bson.D{
		{Key: "enableTestCommands", Value: true},
		{Key: "featureCompatibilityVersion", Value: bson.D{{Key: "version", Value: "8.2"}}},
		{Key: "requireApiVersion", Value: false},
		{Key: "transactionLifetimeLimitSeconds", Value: int32(60)},
	}
}

// handleGetParameter answers {getParameter: '*'} with every parameter and
// {getParameter: 1, name: 1, ...} with the ones named.
func handleGetParameter(r *request) (bsoncore.Document, error) {
	all := serverParameters()
	if s, ok := r.arg(r.name).StringValueOK(); ok && s == "*" {
		return marshal(all)
	}
	out := bson.D{}
	elems, _ := r.cmd.Elements()
	for _, el := range elems {
		k := el.Key()
		if k == r.name || strings.HasPrefix(k, "$") || genericArgs[k] {
			continue
		}
		for _, p := range all {
			if p.Key == k {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, codes.Errorf(codes.InvalidOptions, "no option found to get")
	}
	return marshal(out)
}

// genericArgs are the fields drivers add to any command.
var genericArgs = map[string]bool{"lsid": true, "txnNumber": true, "comment": true, "maxTimeMS": true,
	"readConcern": true, "writeConcern": true, "apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true}

// handleListCommands lists the commands of the command table.
func handleListCommands(env *env, r *request) (bsoncore.Document, error) {
	cmds := bson.D{}
	for _, n := range env.commandNames {
		cmds = append(cmds, bson.E{Key: n, Value: bson.D{{Key: "help", Value: ""}}})
	}
	return marshal(bson.D{{Key: "commands", Value: cmds}})
}

// handleReplSetGetStatus reports the one member, primary.
func handleReplSetGetStatus(t *Topology, r *request) (bsoncore.Document, error) {
	now := bson.NewDateTimeFromTime(time.Now())
	return marshal(bson.D{
		{Key: "set", Value: t.setName},
		{Key: "date", Value: now},
		{Key: "myState", Value: int32(1)},
		{Key: "term", Value: int64(1)},
		{Key: "heartbeatIntervalMillis", Value: int64(2000)},
		{Key: "members", Value: bson.A{bson.D{
			{Key: "_id", Value: int32(0)},
			{Key: "name", Value: t.addr},
			{Key: "health", Value: 1.0},
			{Key: "state", Value: int32(1)},
			{Key: "stateStr", Value: "PRIMARY"},
			{Key: "uptime", Value: int64(time.Since(t.started).Seconds())},
			{Key: "self", Value: true},
		}}},
	})
}

// handleReplSetStepDown: a single node has no electable secondary to hand
// over to. A real one waits secondaryCatchUpPeriodSecs for one to catch
// up and then fails as here; {force: true} would make it step down,
// which mongotest does not implement.
func handleReplSetStepDown(r *request) (bsoncore.Document, error) {
	if f, _ := r.arg("force").BooleanOK(); f {
		return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support replSetStepDown with force: it is a single node that stays primary")
	}
	return nil, codes.Errorf(codes.ExceededTimeLimit, "No electable secondaries caught up as of %s. Please use the replSetStepDown command with the argument {force: true} to force node to step down.",
		time.Now().Format("2006-01-02T15:04:05.000-07:00"))
}

// handleReplSetFreeze: a primary cannot be frozen.
func handleReplSetFreeze(r *request) (bsoncore.Document, error) {
	return nil, codes.Errorf(codes.NotSecondary, "cannot freeze node when primary or running for election. state: Primary")
}

// handleSearchIndexes answers the Atlas Search index commands as a
// mongod without a search server (mongot) does.
func handleSearchIndexes(r *request) (bsoncore.Document, error) {
	return nil, codes.Errorf(codes.SearchNotEnabled, "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires additional configuration. Please connect to Atlas or an AtlasCLI local deployment to enable. For more information on how to connect, see https://dochub.mongodb.org/core/atlas-cli-deploy-local-reqs")
}
