package handler

import (
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// notSupported answers the transaction commands (commitTransaction,
// abortTransaction): mongotest does not implement transactions, so it
// refuses them, naming the command, rather than answer ok to something it
// did not do.
func notSupported(_ *env, r *request) (bsoncore.Document, error) {
	return nil, codes.Errorf(codes.NotImplemented, "mongotest does not support %s: transactions are not implemented", r.name)
}
