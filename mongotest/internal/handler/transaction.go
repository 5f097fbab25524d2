package handler

import (
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
		return env.engine, nil
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
	if err == nil && e != env.engine {
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
