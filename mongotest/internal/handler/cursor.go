package handler

import (
	"errors"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// defaultAwait is how long a getMore on a change stream waits for an
// event when the driver sends no maxTimeMS.
const defaultAwait = time.Second

// handleGetMore needs the engine and the failpoints: a
// failGetMoreAfterCursorCheckout failpoint fires once the cursor is
// checked out.
func handleGetMore(env *env, r *request) (bsoncore.Document, error) {
	v := r.arg(r.name)
	id, ok := v.Int64OK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "Field 'getMore' must be of type long in: %s", v.Type)
	}
	coll, ok := r.arg("collection").StringValueOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "getMore requires a 'collection' string")
	}
	batchSize := int64(0)
	if bv := r.arg("batchSize"); bv.Type != 0 {
		n, ok := bsonutil.AsInt64(bv)
		if !ok || n < 0 {
			return nil, codes.Errorf(codes.BadValue, "batchSize must be a non-negative number")
		}
		batchSize = n
	}
	await := defaultAwait
	if mv := r.arg("maxTimeMS"); mv.Type != 0 {
		n, ok := bsonutil.AsInt64(mv)
		if !ok || n < 0 {
			return nil, codes.Errorf(codes.BadValue, "maxTimeMS must be a non-negative number")
		}
		await = time.Duration(n) * time.Millisecond
	}

	e, err := env.txnEngine(r)
	if err != nil {
		return nil, err
	}
	cur, err := e.Checkout(id, r.db, coll, r.session())
	if err != nil {
		return nil, err
	}
	defer e.Release(cur)
	if act := env.failpoints.AfterCheckout(r.c.AppName, "getMore", cur.IsStream()); act != nil {
		if err := act.Apply(r.c.Ctx); err != nil {
			if _, ok := err.(*codes.Error); ok {
				// A getMore that fails after checkout destroys its cursor,
				// as on a real server.
				e.Kill(cur)
			}
			return nil, err
		}
	}
	if !cur.IsStream() {
		return e.NextDocs(cur, int(batchSize)), nil
	}
	out, err := e.NextEvents(r.c.Ctx, cur, r.startReply(), int(batchSize), await)
	if err != nil {
		if r.c.Ctx.Err() != nil && errors.Is(err, r.c.Ctx.Err()) {
			return nil, errConnClosed
		}
		return nil, err
	}
	return r.finishReply(out)
}

func handleKillCursors(e *engine.Engine, r *request) (bsoncore.Document, error) {
	ids, ok := r.arg("cursors").ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.FailedToParse, "killCursors requires a 'cursors' array")
	}
	vals, err := ids.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "killCursors: %v", err)
	}
	list := make([]int64, len(vals))
	for i, v := range vals {
		id, ok := v.Int64OK()
		if !ok {
			return nil, codes.Errorf(codes.TypeMismatch, "killCursors: cursor ids must be longs")
		}
		list[i] = id
	}
	killed, notFound := e.KillCursors(list)
	return marshal(bson.D{
		{Key: "cursorsKilled", Value: ids64(killed)},
		{Key: "cursorsNotFound", Value: ids64(notFound)},
		{Key: "cursorsAlive", Value: bson.A{}},
		{Key: "cursorsUnknown", Value: bson.A{}},
	})
}

// ids64 is ids as a BSON array, empty rather than null.
func ids64(ids []int64) bson.A {
	a := bson.A{}
	for _, id := range ids {
		a = append(a, id)
	}
	return a
}
