package handler

import (
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Transactions. A command sent with lsid, txnNumber and autocommit: false
// belongs to the session's transaction; startTransaction: true on the
// first starts it. Such a command runs against the transaction's
// workspace (see the engine's transaction.go) instead of the data, and
// the documents its writes touched are then checked for conflicts.

// inTxn reports whether the command is part of a transaction.
func (r *request) inTxn() bool {
	return r.arg("autocommit").Type != 0 && r.arg("txnNumber").Type != 0 && r.session() != ""
}

// txnRequest describes the command's transaction for the engine.
func (r *request) txnRequest() (engine.TxnRequest, error) {
	if ac, ok := r.arg("autocommit").BooleanOK(); !ok || ac {
		return engine.TxnRequest{}, codes.Errorf(codes.InvalidOptions, "autocommit may only be specified as false")
	}
	n, ok := r.arg("txnNumber").Int64OK()
	if !ok {
		return engine.TxnRequest{}, codes.Errorf(codes.TypeMismatch, "BSON field 'txnNumber' must be a long")
	}
	lsid, _ := r.arg("lsid").DocumentOK()
	start, _ := r.arg("startTransaction").BooleanOK()
	return engine.TxnRequest{Session: r.session(), LSID: lsid, Number: n, Start: start}, nil
}

// allowedInTxn are the commands a transaction may run.
var allowedInTxn = map[string]bool{
	"find": true, "getMore": true, "killCursors": true, "insert": true, "update": true, "delete": true,
	"findAndModify": true, "aggregate": true, "distinct": true, "create": true, "createIndexes": true,
	"bulkWrite": true, "commitTransaction": true, "abortTransaction": true,
}

// txnEngine returns the engine a command runs against: the data, or the
// workspace of the transaction the command belongs to.
func (env *env) txnEngine(r *request) (*engine.Engine, error) {
	if !r.inTxn() {
		if r.arg("startTransaction").Type != 0 {
			return nil, codes.Errorf(codes.InvalidOptions, "startTransaction requires autocommit: false and a txnNumber")
		}
		if snap, err := snapshotRead(r); err != nil || !snap {
			return env.engine, err
		}
		var at *bson.Timestamp
		rc, _ := r.arg("readConcern").DocumentOK()
		if t, i, ok := rc.Lookup("atClusterTime").TimestampOK(); ok {
			at = &bson.Timestamp{T: t, I: i}
		}
		e, t, err := env.engine.Snapshot(at)
		r.atClusterTime = &t
		return e, err
	}
	if !allowedInTxn[r.name] {
		return nil, codes.Errorf(codes.OperationNotSupportedInTransaction, "Cannot run '%s' in a multi-document transaction.", r.name)
	}
	req, err := r.txnRequest()
	if err != nil {
		return nil, err
	}
	if r.arg("writeConcern").Type != 0 {
		return nil, codes.Errorf(codes.InvalidOptions, "Cannot set write concern after starting a transaction.")
	}
	if r.arg("readConcern").Type != 0 && !req.Start {
		return nil, codes.Errorf(codes.InvalidOptions, "Only the first command in a transaction may specify a readConcern")
	}
	return env.engine.Txn(req)
}

// runInTxn runs h against the command's engine; in a transaction, the
// documents its writes touched are then checked for conflicts.
func (env *env) runInTxn(r *request, h func(e *engine.Engine, r *request) (bsoncore.Document, error)) (bsoncore.Document, error) {
	e, err := env.txnEngine(r)
	if err != nil {
		return nil, err
	}
	body, err := h(e, r)
	if err == nil && r.atClusterTime != nil {
		return withAtClusterTime(body, *r.atClusterTime), nil
	}
	if e != env.engine {
		// As on a real server, a command of a transaction that fails, or
		// whose write fails, aborts the transaction.
		if err != nil || body.Lookup("writeErrors").Type != 0 {
			env.engine.AbortOpenTransaction(r.session())
			return body, err
		}
		if cerr := env.engine.CheckTxnWrites(r.session()); cerr != nil {
			return nil, cerr
		}
	}
	return body, err
}

// handleCommitTransaction commits the session's transaction
// ({commitTransaction: 1} on admin, with lsid, txnNumber, autocommit:
// false). Committing a committed transaction again succeeds.
func handleCommitTransaction(e *engine.Engine, r *request) (bsoncore.Document, error) {
	req, err := txnControl(r)
	if err != nil {
		return nil, err
	}
	return nil, e.CommitTransaction(req.Session, req.Number)
}

// handleAbortTransaction aborts the session's transaction.
func handleAbortTransaction(e *engine.Engine, r *request) (bsoncore.Document, error) {
	req, err := txnControl(r)
	if err != nil {
		return nil, err
	}
	return nil, e.AbortTransaction(req.Session, req.Number)
}

func txnControl(r *request) (engine.TxnRequest, error) {
	if r.db != "admin" {
		return engine.TxnRequest{}, codes.Errorf(codes.Unauthorized, "%s may only be run against the admin database.", r.name)
	}
	if !r.inTxn() {
		return engine.TxnRequest{}, codes.Errorf(codes.InvalidOptions, "%s must be run within a transaction", r.name)
	}
	return r.txnRequest()
}

// snapshotReads are the commands a real server runs with read concern
// snapshot outside a transaction.
var snapshotReads = map[string]bool{"find": true, "aggregate": true, "distinct": true}

// snapshotRead reports whether the command reads with read concern
// snapshot outside a transaction; a command other than find, aggregate
// and distinct cannot, as on a real server.
func snapshotRead(r *request) (bool, error) {
	rc, ok := r.arg("readConcern").DocumentOK()
	if !ok {
		return false, nil
	}
	if level, _ := rc.Lookup("level").StringValueOK(); level != "snapshot" {
		if rc.Lookup("atClusterTime").Type != 0 {
			return false, codes.Errorf(codes.InvalidOptions, "readConcern.atClusterTime requires read concern level snapshot")
		}
		return false, nil
	}
	if !snapshotReads[r.name] {
		return false, codes.Errorf(codes.InvalidOptions, "Command %s does not support { readConcern: { level: \"snapshot\" } } outside a transaction", r.name)
	}
	return true, nil
}

// withAtClusterTime adds the time a snapshot read was answered at to its
// reply: in the cursor of find and aggregate, at the top of distinct, as
// a real server reports it.
func withAtClusterTime(body bsoncore.Document, t bson.Timestamp) bsoncore.Document {
	idx, out := bsoncore.AppendDocumentStart(nil)
	elems, _ := body.Elements()
	inCursor := false
	for _, el := range elems {
		if cur, ok := el.Value().DocumentOK(); ok && el.Key() == "cursor" {
			cidx, o := bsoncore.AppendDocumentElementStart(out, "cursor")
			o = append(o, cur[4:len(cur)-1]...)
			o = bsoncore.AppendTimestampElement(o, "atClusterTime", t.T, t.I)
			out, _ = bsoncore.AppendDocumentEnd(o, cidx)
			inCursor = true
			continue
		}
		out = append(out, el...)
	}
	if !inCursor {
		out = bsoncore.AppendTimestampElement(out, "atClusterTime", t.T, t.I)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}
