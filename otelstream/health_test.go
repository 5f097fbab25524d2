package otelstream_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/otelstream"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// fixedSource reports the Stats and liveness it is given.
type fixedSource struct {
	st    stream.Stats
	alive bool
}

func (f fixedSource) Stats() stream.Stats { return f.st }
func (f fixedSource) Alive() bool         { return f.alive }

// TestHealthCheckRules: each rule on its own, and all failing together.
func TestHealthCheckRules(t *testing.T) {
	ct := bson.Timestamp{T: 1714557600}
	tests := []struct {
		name   string
		src    fixedSource
		maxLag time.Duration
		want   []string // reasons; none means healthy
	}{
		{"fresh", fixedSource{stream.Stats{ClusterTime: ct, Lag: 2 * time.Second}, true}, 0, nil},
		{"no cluster time yet", fixedSource{stream.Stats{Lag: time.Hour}, true}, 0, nil},
		{"caught up", fixedSource{stream.Stats{ClusterTime: ct, Lag: time.Hour, CaughtUp: true}, true}, time.Second, nil},
		{"lag at the budget", fixedSource{stream.Stats{ClusterTime: ct, Lag: 10 * time.Second}, true}, 10 * time.Second, nil},
		{"lag over the budget", fixedSource{stream.Stats{ClusterTime: ct, Lag: 11 * time.Second}, true}, 10 * time.Second,
			[]string{"lag 11s is above the budget of 10s"}},
		{"lag over the default budget", fixedSource{stream.Stats{ClusterTime: ct, Lag: 2 * time.Minute}, true}, 0,
			[]string{"lag 2m0s is above the budget of 1m0s"}},
		{"ended", fixedSource{stream.Stats{ClusterTime: ct}, false}, 0, []string{"the stream has ended"}},
		{"checkpoint failing", fixedSource{stream.Stats{CheckpointErr: errors.New("disk full")}, true}, 0,
			[]string{"the last checkpoint save failed: disk full"}},
		{"everything", fixedSource{stream.Stats{ClusterTime: ct, Lag: time.Hour, CheckpointErr: errors.New("disk full")}, false}, 0,
			[]string{"the stream has ended", "the last checkpoint save failed: disk full", "lag 1h0m0s is above the budget of 1m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &otelstream.HealthCheck{Stream: tt.src, MaxLag: tt.maxLag}
			err := h.Check()
			var ue *otelstream.UnhealthyError
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tt.want != nil && !errors.As(err, &ue):
				t.Errorf("Check = %v, want an *UnhealthyError", err)
			case tt.want != nil && strings.Join(ue.Reasons, "|") != strings.Join(tt.want, "|"):
				t.Errorf("reasons %q, want %q", ue.Reasons, tt.want)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/ready", nil))
			wantCode, wantBody := http.StatusOK, "ok\n"
			if tt.want != nil {
				wantCode, wantBody = http.StatusServiceUnavailable, strings.Join(tt.want, "\n")+"\n"
			}
			if rec.Code != wantCode || rec.Body.String() != wantBody {
				t.Errorf("GET /ready = %d %q, want %d %q", rec.Code, rec.Body.String(), wantCode, wantBody)
			}
		})
	}
	if err := (&otelstream.HealthCheck{}).Check(); err == nil {
		t.Error("a HealthCheck without a Stream passed")
	}
}

// TestHealthCheckOfAStream: a real stream is ready while it delivers, not
// while its checkpoint saves fail, ready again once one succeeds, and not
// after Close.
func TestHealthCheckOfAStream(t *testing.T) {
	f := newFixture(t)
	store := &flakyStore{}
	s, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil,
		&stream.Options{Name: "orders", Store: store, CheckpointEvery: 1, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&otelstream.HealthCheck{Stream: s, MaxLag: time.Minute})
	defer srv.Close()
	probe := func(when string, wantCode int, wantBody string) {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantCode || !strings.Contains(string(b), wantBody) {
			t.Errorf("%s: %d %q, want %d and %q", when, resp.StatusCode, b, wantCode, wantBody)
		}
	}
	probe("a new stream", 200, "ok")
	f.insert(t, 1, 2)
	if _, err := s.Next(f.ctx); err != nil {
		t.Fatal(err)
	}
	probe("after an event", 200, "ok")
	store.fail.Store(true)
	if _, err := s.Next(f.ctx); err != nil { // commits 1; the save fails
		t.Fatal(err)
	}
	probe("after a failed save", 503, "the last checkpoint save failed: store down")
	store.fail.Store(false)
	f.insert(t, 3)
	if _, err := s.Next(f.ctx); err != nil { // commits 2; the save succeeds
		t.Fatal(err)
	}
	probe("after a save succeeded", 200, "ok")
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	probe("after Close", 503, "the stream has ended")
}

// TestRegisterRefuses: bad arguments are errors, not panics.
func TestRegisterRefuses(t *testing.T) {
	if _, err := otelstream.Register(nil, nil, &otelstream.Options{Name: "x"}); err == nil {
		t.Error("Register accepted a nil stream")
	}
	for _, o := range []*otelstream.Options{nil, {}} {
		if _, err := otelstream.Register(nil, fixedSource{}, o); err == nil || !strings.Contains(err.Error(), "Name") {
			t.Errorf("Register with %+v: %v, want an error about Name", o, err)
		}
	}
}
