package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const msgResumedWithoutEvent = "changestream: the driver resumed without an event; waiting before the next getMore"

// A getMore that fails every time with an error the driver resumes from
// makes the driver resume inside each call, without an end. The stream
// paces those calls with the backoff of its own new watches and ends with
// ErrResumeFailing once RewatchTimeout is used up; a new stream from the
// resume token then loses nothing.
func TestDriverResumesThatKeepFailing(t *testing.T) {
	tests := []struct {
		name string
		fp   mongotest.FailPoint
	}{
		{name: "CursorNotFound after cursor checkout",
			fp: mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 43}},
		{name: "every getMore's connection closed",
			fp: mongotest.FailPoint{Commands: []string{"getMore"}, CloseConnection: true}},
		{name: "resumable label on every getMore",
			fp: mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 91, ErrorLabels: []string{"ResumableChangeStreamError"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.needMongotest(t, "failpoints")
			logs := newLogCapture()
			const timeout = 1500 * time.Millisecond
			o := &stream.Options{Logger: logs.logger(), RewatchDelay: 20 * time.Millisecond,
				RewatchMaxDelay: 200 * time.Millisecond, RewatchTimeout: timeout}
			s := watchWith(t, f, o)
			f.insert(t, Order{ID: 1})
			nextIDs(t, f, s, 1)
			tok := s.ResumeToken()
			aggs := len(f.mon.commands("aggregate"))
			f.srv.FailCommand(tt.fp)

			// Without pacing this Next never returns: give it far more
			// than RewatchTimeout before calling it a hang.
			ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := s.Next(ctx)
			elapsed := time.Since(start)
			if !errors.Is(err, stream.ErrResumeFailing) {
				t.Fatalf("Next: %v, want ErrResumeFailing", err)
			}
			if !strings.Contains(err.Error(), "resumes in a row without an event") {
				t.Errorf("error %q does not say what failed", err)
			}
			if s.Alive() {
				t.Error("Alive() after giving up")
			}
			// The driver's resumes were paced: a handful of aggregates,
			// not thousands.
			resumes := len(f.mon.commands("aggregate")) - aggs
			if resumes < 2 || resumes > 40 {
				t.Errorf("%d resumes in %v, want a paced few", resumes, elapsed)
			}
			if n := logs.count(msgResumedWithoutEvent); n < 1 {
				t.Errorf("no log line %q", msgResumedWithoutEvent)
			}
			t.Logf("gave up after %v and %d resumes: %v", elapsed, resumes, err)
			// The token may have moved to a resumed cursor's
			// postBatchResumeToken: no event came before it.
			tok = s.ResumeToken()

			// The fault mended, a new stream from the token sees the
			// writes made meanwhile.
			f.srv.ClearFailPoints()
			f.insert(t, Order{ID: 2})
			again := watchWith(t, f, nil, options.ChangeStream().SetResumeAfter(tok.Raw()))
			nextIDs(t, f, again, 2)
		})
	}
}

// A single resume of the driver costs no delay, and an event between two
// resumes starts the count again: only resumes in a row without an event
// are paced and limited.
func TestDriverResumesWithEventsBetween(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	logs := newLogCapture()
	o := &stream.Options{Logger: logs.logger(), RewatchDelay: time.Hour, RewatchMaxDelay: time.Hour, RewatchTimeout: time.Hour}
	s := watchWith(t, f, o)
	for id := 1; id <= 5; id++ {
		f.srv.FailCommand(mongotest.FailPoint{AfterCursorCheckout: true, ErrorCode: 43, Times: 1})
		f.insert(t, Order{ID: id})
		nextIDs(t, f, s, id) // an hour's delay would fail the fixture's deadline
	}
	if st := s.Stats(); st.Resumes < 5 {
		t.Errorf("%d resumes, want at least 5", st.Resumes)
	}
	if n := logs.count(msgResumedWithoutEvent); n != 0 {
		t.Errorf("%d paced calls, want none", n)
	}
}
