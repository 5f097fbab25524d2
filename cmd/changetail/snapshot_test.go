package main

import (
	"strings"
	"testing"

	"github.com/go-changestream/changestream/stream"
)

// TestSnapshotFlag: with -snapshot and no saved position, the existing
// documents come first as snapshot events, then the changes.
func TestSnapshotFlag(t *testing.T) {
	d := newDeployment(t)
	d.insert(t, 1, 2, 3)
	code, stdout, stderr := runTail(d.ctx, "-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-snapshot", "-limit", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	evs := events(t, stdout, false)
	if ids := docIDs(evs); !equalIDs(ids, 1, 2, 3) {
		t.Fatalf("printed %v, want the documents 1, 2, 3", ids)
	}
	for _, ev := range evs {
		if op := ev.Lookup("operationType").StringValue(); op != "snapshot" {
			t.Fatalf("operationType %q, want snapshot: %s", op, ev)
		}
		if _, ok := ev.Lookup("fullDocument").DocumentOK(); !ok {
			t.Fatalf("a snapshot event without fullDocument: %s", ev)
		}
	}
	code, _, stderr = runTail(d.ctx, "-uri", d.srv.URI(), "-db", "shop", "-snapshot", "-since", "10m")
	if code != 2 || !strings.Contains(stderr, "-snapshot and -since exclude each other") {
		t.Fatalf("-snapshot -since: exit %d, %q; want a usage error", code, stderr)
	}
}

func TestSnapshotLine(t *testing.T) {
	tests := []struct {
		st   stream.SnapshotStats
		want string
	}{
		{stream.SnapshotStats{Running: true, Copied: 450, Estimated: 1000, Namespace: "shop.orders"},
			"snapshot [#############.................]  45%  450 of ~1000 documents  shop.orders"},
		{stream.SnapshotStats{Running: true, Copied: 0, Estimated: 0, Namespace: "shop.orders"},
			"snapshot [..............................]   0%  0 of ~0 documents  shop.orders"},
		{stream.SnapshotStats{Running: true, Copied: 1200, Estimated: 1000, Namespace: "shop.b"},
			"snapshot [##############################] 100%  1200 of ~1000 documents  shop.b"},
	}
	for _, tt := range tests {
		if got := snapshotLine(tt.st); got != tt.want {
			t.Errorf("snapshotLine(%+v) =\n%q, want\n%q", tt.st, got, tt.want)
		}
	}
}
