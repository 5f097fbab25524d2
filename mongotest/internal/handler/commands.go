package handler

import (
	"sort"
	"strings"

	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// handlerFunc runs a command and returns the reply fields other than ok,
// operationTime and $clusterTime, which Serve adds. A handler whose reply
// is large (a batch of events) builds it in place instead: it appends its
// fields to r.startReply() and returns r.finishReply(out).
type handlerFunc func(env *env, r *request) (bsoncore.Document, error)

// command is one row of the command table.
type command struct {
	name string
	run  handlerFunc
}

// commands is every command mongotest answers, sorted by name; names are
// matched without regard to case. hello and isMaster are answered by
// Serve itself, before any failpoint.
var commands = []command{
	{"abortTransaction", withControl(handleAbortTransaction)},
	{"aggregate", withEngine(handleAggregate)},
	{"buildInfo", plain(handleBuildInfo)},
	{"bulkWrite", retryableWrite(handleBulkWrite)},
	{"collMod", withEngine(handleCollMod)},
	{"commitTransaction", withControl(handleCommitTransaction)},
	{"configureFailPoint", withFailPoints(handleConfigureFailPoint)},
	{"connectionStatus", plain(handleConnectionStatus)},
	{"count", withEngine(handleCount)},
	{"create", withEngine(handleCreate)},
	{"createIndexes", withEngine(handleCreateIndexes)},
	{"createSearchIndexes", plain(handleSearchIndexes)},
	{"delete", retryableWrite(handleDelete)},
	{"deleteIndexes", withEngine(handleDropIndexes)},
	{"distinct", withEngine(handleDistinct)},
	{"drop", withEngine(handleDrop)},
	{"dropDatabase", withEngine(handleDropDatabase)},
	{"dropIndexes", withEngine(handleDropIndexes)},
	{"dropSearchIndex", plain(handleSearchIndexes)},
	{"endSessions", withEngine(handleEndSessions)},
	{"find", withEngine(handleFind)},
	{"findAndModify", retryableWrite(handleFindAndModify)},
	{"getCmdLineOpts", plain(handleGetCmdLineOpts)},
	{"getMore", handleGetMore},
	{"getParameter", plain(handleGetParameter)},
	{"hostInfo", withTopology(handleHostInfo)},
	{"insert", retryableWrite(handleInsert)},
	{"killAllSessions", withEngine(handleKillAllSessions)},
	{"killCursors", withEngine(handleKillCursors)},
	{"killSessions", withEngine(handleEndSessions)},
	{"listCollections", withEngine(handleListCollections)},
	{"listCommands", handleListCommands},
	{"listDatabases", withEngine(handleListDatabases)},
	{"listIndexes", withEngine(handleListIndexes)},
	{"logout", plain(handleEmptyOK)},
	{"ping", plain(handleEmptyOK)},
	{"refreshSessions", plain(handleEmptyOK)},
	{"renameCollection", withEngine(handleRenameCollection)},
	{"replSetFreeze", plain(handleReplSetFreeze)},
	{"replSetGetStatus", withTopology(handleReplSetGetStatus)},
	{"replSetStepDown", plain(handleReplSetStepDown)},
	{"saslContinue", plain(handleEmptyOK)},
	{"serverStatus", withTopology(handleServerStatus)},
	{"update", retryableWrite(handleUpdate)},
	{"updateSearchIndex", plain(handleSearchIndexes)},
}

// commandIndex finds the rows of commands by lower-case name.
var commandIndex = func() map[string]handlerFunc {
	m := make(map[string]handlerFunc, len(commands))
	for _, c := range commands {
		m[strings.ToLower(c.name)] = c.run
	}
	return m
}()

// lookup returns the handler of the command name, or nil.
func lookup(name string) handlerFunc { return commandIndex[strings.ToLower(name)] }

// The adapters give each handler the part of env it needs.

func plain(h func(r *request) (bsoncore.Document, error)) handlerFunc {
	return func(_ *env, r *request) (bsoncore.Document, error) { return h(r) }
}

func withEngine(h func(e *engine.Engine, r *request) (bsoncore.Document, error)) handlerFunc {
	return func(env *env, r *request) (bsoncore.Document, error) { return env.runInTxn(r, h) }
}

// withControl gives the transaction commands the data's engine itself.
func withControl(h func(e *engine.Engine, r *request) (bsoncore.Document, error)) handlerFunc {
	return func(env *env, r *request) (bsoncore.Document, error) { return h(env.engine, r) }
}

func withFailPoints(h func(f *failpoint.Set, r *request) (bsoncore.Document, error)) handlerFunc {
	return func(env *env, r *request) (bsoncore.Document, error) { return h(env.failpoints, r) }
}

func withTopology(h func(t *Topology, r *request) (bsoncore.Document, error)) handlerFunc {
	return func(env *env, r *request) (bsoncore.Document, error) { return h(env.topology, r) }
}

// commandNames lists every command the server answers, hello and isMaster
// included, sorted; listCommands reports it.
func commandNames() []string {
	names := []string{"hello", "isMaster"}
	for _, c := range commands {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return names
}
