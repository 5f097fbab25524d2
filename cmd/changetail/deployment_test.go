package main

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestWatchesTheDeployment: without -db, changetail watches every
// database.
func TestWatchesTheDeployment(t *testing.T) {
	d := newDeployment(t)
	since := d.since()
	d.insert(t, 1)
	invoices := d.orders.Database().Client().Database("billing").Collection("invoices")
	if _, err := invoices.InsertOne(d.ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	d.insert(t, 3)
	code, stdout, stderr := runTail(d.ctx, "-uri", d.srv.URI(), "-since", since, "-limit", "3", "-format", "op")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `insert shop.orders {"_id":1}
insert billing.invoices {"_id":2}
insert shop.orders {"_id":3}
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if strings.Contains(stderr, "waiting") {
		t.Errorf("a run against a deployment that is there said it waits: %q", stderr)
	}
}
