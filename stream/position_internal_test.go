package stream

import (
	"context"
	"errors"
	"testing"
)

// The events in flight of a position, committed oldest first while more
// are delivered (what Process does): every commit takes exactly the events
// through its token, older tokens are refused as committed, tokens not
// delivered as not delivered, and the list does not grow past what is in
// flight at once.
func TestPositionCommitOldestFirst(t *testing.T) {
	ctx := context.Background()
	p := newPosition(&Options{})
	delivered, committed := 0, 0
	deliver := func(n int) {
		for range n {
			delivered++
			tok := memToken(delivered)
			p.deliver(tok, mark{tok: tok}, false)
		}
	}
	check := func(step string) {
		t.Helper()
		st := p.state()
		if st.inflight != delivered-committed {
			t.Fatalf("%s: %d in flight, want %d", step, st.inflight, delivered-committed)
		}
		if committed > 0 && memTokenN(st.committed.tok) != committed {
			t.Fatalf("%s: committed through %d, want %d", step, memTokenN(st.committed.tok), committed)
		}
	}
	const window = 64
	deliver(window)
	for round := range 200 {
		// Commit a few of the oldest, by _id, then deliver as many.
		k := 1 + round%7
		committed += k
		if err := p.commitThrough(ctx, memToken(committed)); err != nil {
			t.Fatalf("round %d: commit through %d: %v", round, committed, err)
		}
		check("after commit")
		if err := p.commitThrough(ctx, memToken(committed)); !errors.Is(err, ErrAlreadyCommitted) {
			t.Fatalf("round %d: a second commit through %d returned %v, want ErrAlreadyCommitted", round, committed, err)
		}
		if err := p.commitThrough(ctx, memToken(delivered+1)); !errors.Is(err, ErrNotDelivered) {
			t.Fatalf("round %d: a commit of an event not delivered returned %v, want ErrNotDelivered", round, err)
		}
		deliver(k)
		check("after deliver")
		if c := cap(p.inflight); c > 4*window {
			t.Fatalf("round %d: the list of events in flight has capacity %d for %d events", round, c, window)
		}
	}
	// A commit in the middle, then of the newest (the ResumeToken), empties
	// the list.
	committed += window / 2
	if err := p.commitThrough(ctx, memToken(committed)); err != nil {
		t.Fatal(err)
	}
	check("middle")
	if err := p.commitThrough(ctx, p.resumeToken()); err != nil {
		t.Fatal(err)
	}
	committed = delivered
	check("newest")
	if p.head != 0 || len(p.inflight) != 0 {
		t.Errorf("an empty list keeps head %d, length %d", p.head, len(p.inflight))
	}
}
