package mongotest_test

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// mongotest does not implement transactions: the transaction commands
// are refused with an error naming them, never answered ok.
func TestTransactionCommandsNotSupported(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"commitTransaction", "abortTransaction"} {
		t.Run(name, func(t *testing.T) {
			err := f.client.Database("admin").RunCommand(f.ctx, bson.D{{Key: name, Value: 1}}).Err()
			var ce mongo.CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: got %v, want a command error", name, err)
			}
			if ce.Code != 238 || !strings.Contains(ce.Message, name) || !strings.Contains(ce.Message, "does not support") {
				t.Errorf("%s: got (%d) %q, want NotImplemented (238) naming the command", name, ce.Code, ce.Message)
			}
		})
	}
}
