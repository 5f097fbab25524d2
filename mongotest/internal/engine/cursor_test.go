package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/codes"
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

// killCursors on a cursor a getMore waits on ends that getMore at once
// with CursorKilled, as on a real server (its kill_pinned_cursor test):
// the client's connection stays usable, and a driver does not resume a
// stream on it. The cursor is gone. Killed before its getMore, a cursor
// is not found.
func TestKillCursorsInterruptsAWaitingGetMore(t *testing.T) {
	e := New(0, time.Minute)
	ids := openStreams(t, e, 2)
	cur, err := e.Checkout(ids[0], "db", "c", "")
	if err != nil {
		t.Fatal(err)
	}
	type reply struct {
		out []byte
		err error
	}
	done := make(chan reply, 1)
	go func() {
		_, out := bsoncore.AppendDocumentStart(nil)
		out, err := e.NextEvents(context.Background(), cur, out, 0, time.Hour)
		done <- reply{out, err}
	}()
	// Whether the getMore already waits or not, its cursor is checked
	// out: the kill interrupts it.
	killed, notFound := e.KillCursors([]int64{ids[0]})
	if len(killed) != 1 || killed[0] != ids[0] || len(notFound) != 0 {
		t.Fatalf("KillCursors = killed %v, not found %v; want killed [%d]", killed, notFound, ids[0])
	}
	r := <-done
	var ce *codes.Error
	if !errors.As(r.err, &ce) || ce.Code != codes.CursorKilled || ce.Message != "operation was interrupted" || len(ce.Labels) != 0 {
		t.Fatalf("getMore = %s, %v; want CursorKilled (237) \"operation was interrupted\" without labels", r.out, r.err)
	}
	e.Release(cur)
	if n := e.OpenCursors(); n != 1 {
		t.Fatalf("OpenCursors = %d after the kill, want 1", n)
	}

	// Not checked out when killed: the next getMore does not find it.
	e.KillCursors([]int64{ids[1]})
	if _, err := e.Checkout(ids[1], "db", "c", ""); !errors.As(err, &ce) || ce.Code != codes.CursorNotFound {
		t.Fatalf("Checkout of a killed cursor = %v, want CursorNotFound", err)
	}
}
