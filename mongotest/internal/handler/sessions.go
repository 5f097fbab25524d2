package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// handleEndSessions ends the sessions listed (endSessions, killSessions) ({endSessions: [{id: UUID}, ...]}):
// their retryable-write records are forgotten and their open transactions
// aborted.
func handleEndSessions(e *engine.Engine, r *request) (bsoncore.Document, error) {
	arr, ok := r.arg(r.name).ArrayOK()
	if !ok {
		return nil, codes.Errorf(codes.TypeMismatch, "%s takes an array of session ids", r.name)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, codes.Errorf(codes.FailedToParse, "%s: %v", r.name, err)
	}
	keys := make([]string, 0, len(vals))
	var ids []string
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			if id := d.Lookup("id"); id.Type != 0 {
				keys = append(keys, string(id.Data))
				if _, data, ok := id.BinaryOK(); ok {
					ids = append(ids, string(data))
				}
			}
		}
	}
	e.EndSessions(keys)
	e.EndTransactions(ids)
	return nil, nil
}
