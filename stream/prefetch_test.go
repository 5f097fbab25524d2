package stream_test

import (
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// When a batch of several events is consumed, the next batch is fetched in
// the background; the resume token still moves only with the events
// returned.
func TestPrefetchNeverMovesTheTokenAheadOfDelivery(t *testing.T) {
	tests := []struct {
		name     string
		opts     *stream.Options
		prefetch bool
	}{
		{"default", nil, true},
		{"DisablePrefetch", &stream.Options{DisablePrefetch: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, tt.opts, options.ChangeStream().SetBatchSize(2))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(f.ctx)
			f.insert(t, Order{ID: 1}, Order{ID: 2}, Order{ID: 3}, Order{ID: 4})
			var getMores int
			for want := 1; want <= 2; want++ {
				// Counted before event 2 is returned: its prefetch starts
				// as it is returned.
				getMores = len(f.mon.commands("getMore"))
				if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != want {
					t.Fatalf("order %d, want %d", ev.FullDocument.ID, want)
				}
			}
			// Event 2 ended a batch of two: with prefetching, the getMore for
			// events 3 and 4 runs now, while the caller holds event 2.
			tok2 := s.ResumeToken()
			if tt.prefetch {
				f.mon.waitReplies(t, f.ctx, "getMore", getMores+1)
				if got := s.ResumeToken(); !got.Equal(tok2) {
					t.Errorf("the prefetch moved ResumeToken from %v to %v before event 3 was returned", tok2, got)
				}
			}
			ev3 := nextOrder(t, f.ctx, s)
			if ev3.FullDocument.ID != 3 || !s.ResumeToken().Equal(ev3.ID) {
				t.Errorf("order %d, ResumeToken %v; want 3 and its token %v", ev3.FullDocument.ID, s.ResumeToken(), ev3.ID)
			}
			if got := len(f.mon.commands("getMore")); got != getMores+1 {
				t.Errorf("%d getMores for events 3 and 4, want 1", got-getMores)
			}
		})
	}
}

// Close while a prefetch waits on the server: the fetch is interrupted, its
// cursor killed, and no goroutine of the stream outlives Close.
func TestCloseDuringPrefetch(t *testing.T) {
	before := streamGoroutines()
	f := newFixture(t)
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, nil, options.ChangeStream().SetBatchSize(2))
	if err != nil {
		t.Fatal(err)
	}
	getMores := len(f.mon.commands("getMore"))
	f.insert(t, Order{ID: 1}, Order{ID: 2})
	for want := 1; want <= 2; want++ {
		if ev := nextOrder(t, f.ctx, s); ev.FullDocument.ID != want {
			t.Fatalf("order %d, want %d", ev.FullDocument.ID, want)
		}
	}
	// Event 2 ended a batch of two: after the getMore that brought both, a
	// prefetch getMore is now waiting on the server for events that do not
	// come.
	f.mon.waitStarted(t, f.ctx, "getMore", getMores+2)
	if n := newGoroutines(before, streamGoroutines()); n == 0 {
		t.Fatal("no prefetch in flight; the test would prove nothing")
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := leftGoroutines(before); n != 0 {
		t.Fatalf("%d stream goroutines after Close", n)
	}
	if f.srv != nil && f.srv.OpenCursors() != 0 {
		t.Errorf("%d server cursors after Close", f.srv.OpenCursors())
	}
}
