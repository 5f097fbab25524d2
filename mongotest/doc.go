// Package mongotest provides an in-process MongoDB server for tests: a
// wire-protocol server that behaves like a single-node replica set running
// MongoDB 8.2, which the official Go driver (and other drivers, mongosh
// and tools) connect to over TCP on 127.0.0.1.
//
// It is to MongoDB what net/http/httptest is to HTTP. Start one per test,
// connect with the driver, and let the test's cleanup stop it:
//
//	srv := mongotest.New(t, nil) // closed when the test ends
//	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
//
// NewServer starts a server outside a test; the caller must Close it.
// URI returns a connection string naming the replica set, so the driver
// discovers the server as its primary, and change streams, sessions and
// retryable writes work as against a real replica set. Options (nil means
// defaults) set the address, the replica-set name, how much change
// history is kept, the cursor timeout, how often an idle server advances
// its cluster time (IdleWriteInterval, ten seconds as on a replica set),
// the connection limits and a logger. A server shared by many tests or run
// standalone bounds what one client can take: the number of connections,
// the memory of messages not yet whole, and the time a message may take to
// arrive.
//
// # What it supports
//
// Documents are kept in memory. The data commands a change-stream consumer
// needs are served: insert, update, delete, findAndModify, find and
// getMore, the client-level bulkWrite, create, drop, dropDatabase,
// renameCollection, createIndexes,
// dropIndexes, collMod, listCollections and listDatabases, with query
// filters over equality, dotted paths and the comparison, logical and
// element operators. Every write is recorded in one change log, with its
// cluster time and the images that fullDocument and
// fullDocumentBeforeChange need.
//
// Change streams are opened as a real server opens them: on a collection,
// a database or the whole cluster, with fullDocument,
// fullDocumentBeforeChange, resumeAfter, startAfter, startAtOperationTime
// and showExpandedEvents, followed by $match, $project, $addFields, $set,
// $unset, $replaceRoot and $changeStreamSplitLargeEvent. Events carry
// resume tokens whose leading bytes encode the cluster time as real tokens
// do; every cursor reply carries a postBatchResumeToken; a getMore waits
// for the next write or for maxTimeMS (1 s by default); a drop, rename or
// dropDatabase invalidates the streams it ends. As on a real server, a
// cursor outlives the connection that opened it; it ends when exhausted,
// killed, or left unused for Options.CursorTimeout (ten minutes by default).
// Cursor ids are random, and only the session that opened a cursor may
// continue it. A resume token older than the server's history fails with
// ChangeStreamHistoryLost (286), one that names no event of it with
// ChangeStreamFatalError (280).
//
// Multi-document transactions work as on one node: a transaction reads
// the snapshot of its first command and its own writes; its writes are
// invisible to others until commitTransaction and discarded by
// abortTransaction; a document another open transaction has written, or
// that changed after the snapshot, is a WriteConflict (112) labelled
// TransientTransactionError, which aborts the transaction. The change
// events of a transaction are logged at commit, in order, each with the
// transaction's lsid and txnNumber and, as on a real server, all with the
// commit's cluster time (the operationTime of the commitTransaction
// reply): their resume tokens tell them apart by their index in the
// transaction, so they sort in stream order, resuming after any of them
// continues with the next, and startAtOperationTime of the commit time
// delivers them all.
//
// A snapshot session (read concern snapshot outside a transaction) reads
// find, aggregate and distinct as of the cluster time of its first read,
// which the reply reports as atClusterTime; mongotest keeps the data of
// the last few such times, and an older one fails with SnapshotTooOld
// (239). Other commands refuse read concern snapshot, as on a real server.
// Field names with dots and dollars are written with $setField (and read
// with $getField). Filters may use $expr with the comparison and logical
// expression operators; the let option of aggregate, find, findAndModify,
// update, delete and bulkWrite defines constant variables for them. A
// command of a transaction that fails aborts the transaction, as on a
// real server. A collection aggregation may end with $merge (on _id)
// or $out, whose writes are change events like any other ($out deletes
// the target's documents and inserts the results, where a real server
// renames a temporary collection over the target).
//
// It answers as a single-node replica set does the commands that test
// harnesses send at setup: killAllSessions, serverStatus, getParameter,
// replSetGetStatus and listCommands; replSetStepDown and replSetFreeze
// fail as they fail on one node, and the Atlas Search index commands as
// on a server without a search service. A create of an existing
// collection with the same options succeeds. A write concern of w greater
// than 1 cannot be met by one node: the write is applied and the reply
// carries UnsatisfiableWriteConcern (100). A change stream reads with read
// concern majority only; another level is refused with InvalidOptions (72).
//
// # Faults
//
// A consumer is worth testing where things go wrong. FailCommand injects
// the failures a real server's test failpoints inject (an error code with
// its labels, a closed connection, a delay), also after a getMore has
// checked out its cursor, where a resumable code makes the driver resume
// the stream. Clients can do the same with the configureFailPoint command,
// so tests written for a real server run unchanged: its data may also
// carry a writeConcernError, which the command that runs gets in its
// reply, and fields a real server does not use are ignored; the
// onPrimaryTransactionalWrite failpoint loses the reply of a retryable
// write it applied (or fails it unapplied), once per command where a real
// server fires it per statement. Error labels
// are added as a real server adds them: RetryableWriteError to a
// retryable write, TransientTransactionError inside a transaction. Restart drops every
// connection and cursor and keeps the data and history, as a restarted
// replica set would; DropConnections simulates a network failure;
// TruncateHistory makes the history seen so far unavailable, as an oplog
// that rolled over does, so that resuming from an old token fails with
// ChangeStreamHistoryLost (286). Options.HistoryLimit bounds the history
// all along.
//
// After such a fault the driver clears its connection pool, and a write can
// fail even after the driver's own retry, as against a real server:
// PoolWatch lets a test's writer wait for the pool and try again without
// sleeping. Retryable writes are executed once: a retry of a write whose
// reply was lost gets the first reply, as from a real server.
//
// # What it does not do
//
// mongotest is not a database engine. Indexes do not speed anything up;
// unique ones are enforced (compound, sparse and partial, but an array is
// one key, not one per element). Aggregations on collections support the
// common stages ($match, $sort, $skip, $limit, $project, $group, $count ...)
// that CountDocuments and simple reports use. It does not persist data,
// authenticate, compress, use TLS, or
// act as a sharded cluster or a multi-member replica set (there are no
// secondaries and no elections). Every command, option, query operator or
// stage it does not implement is rejected with an error that names it,
// never answered wrongly.
//
// Without authentication, anyone who can reach the server's address can
// read, change and drop every database: the default address is loopback,
// and an Options.Addr on another interface exposes it to the network.
package mongotest
