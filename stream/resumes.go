package stream

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrResumeFailing means the driver's own resumes kept failing: each time
// the stream asked for an event, the getMore on the driver's cursor failed
// with an error the driver resumes from (CursorNotFound, a closed
// connection, an error labelled ResumableChangeStreamError), the driver
// opened a new cursor, and that cursor's getMore failed again, without an
// event in between, for longer than Options.RewatchTimeout. The driver does
// not report the getMore errors it resumes from; the server's log names
// them. The stream ends; a new Watch from its ResumeToken (or its
// checkpoint) goes on without a gap once the fault is mended.
var ErrResumeFailing = errors.New("changestream: the driver's resumes keep failing: every new cursor's getMore failed again before an event came")

// resumeRun counts the driver's resumes in a row that brought no event:
// the driver resumes inside its own TryNext, without backoff and without
// an end, so the stream paces the calls that follow such a resume as it
// paces its own new watches. It is owned by the goroutine that owns the
// driver's stream.
type resumeRun struct {
	resumes int       // driver resumes in a row without an event
	start   time.Time // when the call that made the first of them began
	call    time.Time // when the latest call to the driver's stream began
}

// noteResume reads the outcome of one TryNext of the driver's stream: got
// is what it returned and before the cursor id it was called with. A new
// cursor id means the driver resumed during the call; it is counted in
// Stats.Resumes, the abandoned cursor is killed, and, when no event came,
// the resume counts towards the run that paceResumes limits. An event, or
// a getMore that succeeded on the same cursor, ends the run.
func (s *Stream[T]) noteResume(before int64, got bool) {
	after := s.cs.ID()
	resumed := before != 0 && after != 0 && after != before
	switch {
	case got:
		s.resumeRun = resumeRun{}
	case s.cs.Err() != nil:
		// The driver gave up (or did not resume): a new watch follows,
		// paced by rewatch, which counts from the run's start.
	case resumed:
		if s.resumeRun.resumes == 0 {
			s.resumeRun.start = s.resumeRun.call
		}
		s.resumeRun.resumes++
	default:
		s.resumeRun = resumeRun{}
	}
	if !resumed {
		return
	}
	s.mu.Lock()
	s.stats.Resumes++
	s.mu.Unlock()
	s.log.Info("changestream: the driver resumed the stream", "resumesWithoutEvent", s.resumeRun.resumes)
	ctx, cancel := context.WithTimeout(s.ictx, time.Second)
	s.killAbandoned(ctx, before)
	cancel()
}

// paceResumes runs before each call to the driver's stream. After driver
// resumes that brought no event it waits the backoff delay of the next
// attempt, as rewatch does between its attempts; once RewatchTimeout (or
// RewatchAttempts) is used up it returns the error that ends the stream.
// It returns ErrClosed when Close interrupts the wait.
func (s *Stream[T]) paceResumes() error {
	defer func() { s.resumeRun.call = time.Now() }()
	run := s.resumeRun
	if run.resumes == 0 {
		return nil
	}
	// The driver resumes again at once inside the call when its getMore
	// fails again, so the delay before the call is the delay before that
	// resume: none after the first, as a first new watch has none.
	delay := s.backoff.delay(run.resumes)
	elapsed := time.Since(run.start)
	if (s.opts.RewatchAttempts > 0 && run.resumes >= s.opts.RewatchAttempts) ||
		elapsed+delay > s.opts.RewatchTimeout {
		s.log.Error("changestream: gave up: the driver's resumes keep failing", "resumes", run.resumes, "elapsed", elapsed)
		return fmt.Errorf("%w (%d resumes in a row without an event in %v; RewatchTimeout %v)",
			ErrResumeFailing, run.resumes, elapsed.Round(time.Millisecond), s.opts.RewatchTimeout)
	}
	if delay <= 0 {
		return nil
	}
	s.log.Warn("changestream: the driver resumed without an event; waiting before the next getMore",
		"resumes", run.resumes, "delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ictx.Done():
		return ErrClosed
	}
}

// rewatchStart is when the time limit of a new watch after a failure
// starts: at the first of the driver's failed resumes that led to it, if
// any, so that both count against one RewatchTimeout.
func (s *Stream[T]) rewatchStart() time.Time {
	if s.resumeRun.resumes > 0 {
		return s.resumeRun.start
	}
	return time.Now()
}
