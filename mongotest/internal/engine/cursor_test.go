package engine

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// openStreams opens n change-stream cursors on db.c and returns their ids.
func openStreams(t testing.TB, e *Engine, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		_, out := bsoncore.AppendDocumentStart(nil)
		out, err := e.OpenChangeStream(StreamSpec{Scope: ScopeCollection, DB: "db", Coll: "c", FullDocument: "default", FullDocumentBeforeChange: "off"}, out, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, _ = bsoncore.AppendDocumentEnd(out, 0)
		id, ok := bsoncore.Document(out).Lookup("cursor", "id").Int64OK()
		if !ok || id == 0 {
			t.Fatalf("no cursor in %s", bsoncore.Document(out))
		}
		ids[i] = id
	}
	return ids
}

// Every cursor operation is O(1) or O(log n) in the number of open
// cursors: opening, checking out, releasing, killing and counting
// cursors examine only the cursors they act on or reap, however many
// others sit idle.
func TestCursorOperationsDoNotScanIdleCursors(t *testing.T) {
	e := New(0, time.Minute)
	const idle = 5000
	ids := openStreams(t, e, idle)
	e.mu.Lock()
	e.cursorVisits = 0
	e.mu.Unlock()

	openStreams(t, e, 1)
	cur, err := e.Checkout(ids[idle/2], "db", "c", "")
	if err != nil {
		t.Fatal(err)
	}
	e.Release(cur)
	e.KillCursors([]int64{ids[0]})
	if n := e.OpenCursors(); n != idle {
		t.Fatalf("OpenCursors = %d, want %d", n, idle)
	}
	e.mu.Lock()
	visits := e.cursorVisits
	e.mu.Unlock()
	if visits > 10 {
		t.Errorf("five cursor operations examined %d cursors with %d idle ones open; want a handful", visits, idle)
	}
}

// Idle cursors are still reaped once the timeout passed, oldest first,
// and a cursor in use is not.
func TestIdleCursorsReapedInOrder(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e := New(0, time.Minute)
	e.SetNow(func() time.Time { return now })
	old := openStreams(t, e, 3)
	busy, err := e.Checkout(old[1], "db", "c", "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	young := openStreams(t, e, 2)
	now = now.Add(45 * time.Second) // the first three are 75 s old, the others 45 s
	if n := e.OpenCursors(); n != 3 {
		t.Fatalf("OpenCursors = %d, want 3 (the busy one and the two young ones)", n)
	}
	for _, id := range []int64{old[0], old[2]} {
		if _, err := e.Checkout(id, "db", "c", ""); err == nil {
			t.Errorf("cursor %d survived its timeout", id)
		}
	}
	e.Release(busy)
	now = now.Add(59 * time.Second) // young: 104 s; busy: released 59 s ago
	if n := e.OpenCursors(); n != 1 {
		t.Fatalf("OpenCursors = %d, want 1 (the one released last)", n)
	}
	if _, err := e.Checkout(young[0], "db", "c", ""); err == nil {
		t.Error("a young cursor survived its timeout")
	}
}
