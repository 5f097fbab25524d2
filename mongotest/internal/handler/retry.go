package handler

import (
	"errors"

	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Retryable writes. The driver sends insert, update, delete and
// findAndModify with the session's lsid and a txnNumber, and after a
// network error sends the same command again with the same txnNumber; the
// engine's retry table answers a retry with the remembered reply.

// retryableWrite wraps a write command's handler: a command with lsid and
// txnNumber (outside a transaction) that the session already ran gets the
// remembered reply instead of running again. It also applies the
// AfterExecution failpoints.
func retryableWrite(h func(e *engine.Engine, r *request) (bsoncore.Document, error)) handlerFunc {
	return func(env *env, r *request) (bsoncore.Document, error) {
		after := afterExecution(env.failpoints, r)
		key, txn, ok := retryKey(r)
		if !ok {
			return after(env.runInTxn(r, h))
		}
		if _, err := snapshotRead(r); err != nil {
			return nil, err
		}
		retry, reply, err := env.engine.BeginRetry(r.c.Ctx, key, txn)
		if err != nil && r.c.Ctx.Err() != nil && errors.Is(err, r.c.Ctx.Err()) {
			return nil, errConnClosed
		}
		if err != nil || reply != nil {
			return after(reply, err)
		}
		body, err := h(env.engine, r)
		env.engine.EndRetry(retry, body, err)
		return after(body, err)
	}
}

// retryKey returns the session key and txnNumber of a retryable write, or
// false when the command is not one (no session, no txnNumber, or part of
// a transaction).
func retryKey(r *request) (string, int64, bool) {
	lsid, ok := r.arg("lsid").DocumentOK()
	if !ok {
		return "", 0, false
	}
	id := lsid.Lookup("id")
	txn, ok := r.arg("txnNumber").Int64OK()
	if !ok || id.Type == 0 || r.arg("autocommit").Type != 0 {
		return "", 0, false
	}
	return string(id.Data), txn, true
}

// afterExecution returns a function that applies a failpoint configured
// with AfterExecution to the outcome of a write: the reply is delayed,
// replaced by an error, or lost with the connection.
func afterExecution(f *failpoint.Set, r *request) func(bsoncore.Document, error) (bsoncore.Document, error) {
	return func(body bsoncore.Document, err error) (bsoncore.Document, error) {
		if act := f.AfterExecution(r.failPointCommand()); act != nil {
			if ferr := act.Apply(r.c.Ctx); ferr != nil {
				return nil, ferr
			}
		}
		return body, err
	}
}
