package otelstream

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultMaxLag is the lag budget of a HealthCheck whose MaxLag is zero.
const DefaultMaxLag = time.Minute

// HealthCheck tells whether a stream can serve, for a readiness probe: the
// stream is alive, its last checkpoint save (Options.Store) did not fail,
// and it is caught up (Stats.CaughtUp) or its lag is within MaxLag. A
// stream whose position has no cluster time yet (nothing came from the
// server) counts as within the budget.
//
// It is an http.Handler: GET answers 200 "ok" or 503 with the reasons, one
// a line. It may be used from any goroutine.
type HealthCheck struct {
	// Stream is the stream to check: a *stream.Stream[T].
	Stream Source

	// MaxLag is the lag budget. The zero value means DefaultMaxLag.
	MaxLag time.Duration
}

// UnhealthyError lists why a stream cannot serve.
type UnhealthyError struct {
	// Reasons are the failed checks, in the order alive, checkpoint, lag.
	Reasons []string
}

// Error joins the reasons.
func (e *UnhealthyError) Error() string {
	return "otelstream: the stream is not ready: " + strings.Join(e.Reasons, "; ")
}

// Check returns nil when the stream can serve, or an *UnhealthyError with
// every reason it cannot.
func (h *HealthCheck) Check() error {
	if h == nil || h.Stream == nil {
		return errors.New("otelstream: HealthCheck has no Stream")
	}
	budget := h.MaxLag
	if budget <= 0 {
		budget = DefaultMaxLag
	}
	st := h.Stream.Stats()
	var why []string
	if !h.Stream.Alive() {
		why = append(why, "the stream has ended")
	}
	if st.CheckpointErr != nil {
		why = append(why, fmt.Sprintf("the last checkpoint save failed: %v", st.CheckpointErr))
	}
	if !st.CaughtUp && !st.ClusterTime.IsZero() && st.Lag > budget {
		why = append(why, fmt.Sprintf("lag %v is above the budget of %v", st.Lag, budget))
	}
	if len(why) > 0 {
		return &UnhealthyError{Reasons: why}
	}
	return nil
}

// ServeHTTP answers 200 "ok" when Check passes, else 503 with the reasons.
func (h *HealthCheck) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	err := h.Check()
	if err == nil {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	var ue *UnhealthyError
	if errors.As(err, &ue) {
		for _, r := range ue.Reasons {
			fmt.Fprintln(w, r)
		}
		return
	}
	fmt.Fprintln(w, err)
}
