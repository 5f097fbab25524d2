package stream_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Fatal errors are never retried: the stream ends with the sentinel (when
// the class has one) and the server's error reachable with errors.As,
// whether the error comes from a getMore or from the aggregate of a new
// watch.
func TestFatalErrorsAreNotRetried(t *testing.T) {
	classes := []struct {
		name     string
		code     int32
		labels   []string
		sentinel error // nil: the server's error as it is
		mention  string
		retried  bool // the driver retries the aggregate once as a retryable read
	}{
		{name: "ChangeStreamHistoryLost", code: 286, labels: []string{"NonResumableChangeStreamError"}, sentinel: stream.ErrHistoryLost},
		{name: "CappedPositionLost on an open cursor", code: 136, sentinel: stream.ErrHistoryLost},
		{name: "InvalidResumeToken", code: 260, sentinel: stream.ErrInvalidToken},
		{name: "ChangeStreamFatalError", code: 280, labels: []string{"NonResumableChangeStreamError"}, sentinel: stream.ErrFatal},
		{name: "BSONObjectTooLarge", code: 10334, sentinel: stream.ErrEventTooLarge, mention: "$changeStreamSplitLargeEvent"},
		{name: "Unauthorized", code: 13},
		{name: "AuthenticationFailed", code: 18},
		{name: "unknown pipeline stage", code: 40324},
		{name: "FailedToParse", code: 9},
		{name: "a label that forbids resuming", code: 6, labels: []string{"NonResumableChangeStreamError"}, retried: true},
	}
	for _, where := range []string{"getMore", "aggregate of a new watch"} {
		for _, c := range classes {
			t.Run(where+"/"+c.name, func(t *testing.T) {
				f := newFixture(t)
				f.needMongotest(t, "failpoints")
				logs := newLogCapture()
				s := watchWith(t, f, fastRewatch(logs))
				labels := c.labels
				if labels == nil {
					labels = []string{}
				}
				fault := mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: c.code, ErrorLabels: labels}
				wantAggs := 1
				if where != "getMore" {
					// The getMore fails in a way the driver does not
					// resume; the new watch then fails with the code.
					f.srv.FailCommand(mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
					fault.Commands = []string{"aggregate"}
					wantAggs = 2
					if c.retried {
						wantAggs++
					}
				}
				f.srv.FailCommand(fault)
				f.insert(t, Order{ID: 1})
				_, err := s.Next(f.ctx)
				if err == nil {
					t.Fatal("Next succeeded")
				}
				if c.sentinel != nil && !errors.Is(err, c.sentinel) {
					t.Errorf("Next: %v, want %v", err, c.sentinel)
				}
				var se mongo.ServerError
				if !errors.As(err, &se) || !se.HasErrorCode(int(c.code)) {
					t.Errorf("Next: %v, the server's error %d is not reachable with errors.As", err, c.code)
				}
				if c.mention != "" && !strings.Contains(err.Error(), c.mention) {
					t.Errorf("error %q does not mention %s", err, c.mention)
				}
				if n := len(f.mon.commands("aggregate")); n != wantAggs {
					t.Errorf("%d aggregates, want %d: the error was retried", n, wantAggs)
				}
				if s.Alive() {
					t.Error("Alive() after a fatal error")
				}
				if _, err2 := s.Next(f.ctx); err2 == nil || err2.Error() != err.Error() {
					t.Errorf("second Next: %v, want the same error", err2)
				}
			})
		}
	}
}

// History truncated past the point a stream must resume from surfaces
// ErrHistoryLost, and no event after the gap is delivered as if nothing
// happened: on Next (the open cursor, or the driver's resume after a
// restart) and on Watch from a saved checkpoint.
func TestHistoryLostIsNeverHidden(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "open cursor"
		if restart {
			name = "resume after a restart"
		}
		t.Run("Next/"+name, func(t *testing.T) {
			f := newFixture(t)
			f.needMongotest(t, "TruncateHistory")
			s := watchWith(t, f, fastRewatch(newLogCapture()))
			f.insert(t, Order{ID: 1}, Order{ID: 2})
			f.srv.TruncateHistory()
			if restart {
				f.srv.Restart()
			}
			f.insert(t, Order{ID: 3}) // after the gap
			ev, err := s.Next(f.ctx)
			if !errors.Is(err, stream.ErrHistoryLost) {
				t.Fatalf("Next: %v %v, want ErrHistoryLost", ev.OperationType, err)
			}
			// An open cursor that fell behind fails as on a real server,
			// with CappedPositionLost; a resume from its token gets
			// ChangeStreamHistoryLost.
			code := 136
			if restart {
				code = 286
			}
			checkServerError(t, err, stream.ErrHistoryLost, code)
			for range 2 {
				if ev, err2 := s.Next(f.ctx); err2 == nil || err2.Error() != err.Error() {
					t.Fatalf("Next after the gap: %v %v, want ErrHistoryLost again", ev.FullDocument, err2)
				}
			}
			if st := s.Stats(); st.Events != 0 {
				t.Errorf("%d events delivered", st.Events)
			}
		})
	}
	t.Run("Watch from a checkpoint", func(t *testing.T) {
		f := newFixture(t)
		f.needMongotest(t, "TruncateHistory")
		store := &stream.MemoryStore{}
		o := &stream.Options{Store: store, Name: "orders"}
		s := watchWith(t, f, o)
		f.insert(t, Order{ID: 1})
		nextIDs(t, f, s, 1)
		if err := s.Close(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.insert(t, Order{ID: 2}, Order{ID: 3})
		f.srv.TruncateHistory()
		f.insert(t, Order{ID: 4})
		s2, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
		if err == nil {
			ev, _ := s2.Next(f.ctx)
			s2.Close(f.ctx)
			t.Fatalf("Watch succeeded; first event %v", ev.FullDocument)
		}
		checkServerError(t, err, stream.ErrHistoryLost, 286)
	})
}
