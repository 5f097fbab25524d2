package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
)

// stillWaitingEvery is how often, at most, changetail repeats that it is
// still waiting for the deployment while the error stays the same.
const stillWaitingEvery = 10 * time.Second

// waitReporter says on stderr what changetail waits for: the deployment
// while it connects, and again after it lost it. It follows the driver's
// view of the deployment through an event.ServerMonitor: while no server
// that can serve a change stream (a primary, a standalone, a mongos or a
// load balancer) is known, each failed check of a server is reported (at
// once when its error is new, else every stillWaitingEvery); servers that
// answer without one that can serve (secondaries alone) make it say that
// it waits for a primary; and the moment one is back it says so. While the deployment is there it says
// nothing. The stream's own attempts to watch again are reported by its
// logger.
type waitReporter struct {
	hosts string    // the hosts of the URI, for the messages
	w     io.Writer // stderr, through the redactor
	pre   string    // the prefix of each line

	mu       sync.Mutex
	up       bool      // a server that can serve the stream is known
	waiting  bool      // a waiting message was printed since the last up
	ever     bool      // the deployment was up once
	since    time.Time // when the wait began
	lastErr  string
	lastSaid time.Time
	stopped  bool
}

func newWaitReporter(hosts []string, w io.Writer, terminal bool) *waitReporter {
	r := &waitReporter{hosts: strings.Join(hosts, ","), w: w, pre: "changetail: ", since: time.Now()}
	if terminal {
		r.pre = "\r\x1b[K" + r.pre
	}
	return r
}

// monitor returns the client's server monitor.
func (r *waitReporter) monitor() *event.ServerMonitor {
	return &event.ServerMonitor{
		TopologyDescriptionChanged: r.topologyChanged,
		ServerHeartbeatFailed:      r.checkFailed,
	}
}

// stop silences the reporter: the client is about to disconnect.
func (r *waitReporter) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
}

func (r *waitReporter) say(format string, args ...any) {
	fmt.Fprintf(r.w, r.pre+format+"\n", args...)
}

// canServe reports whether a server of kind can serve a change stream
// with the default read preference.
func canServe(kind string) bool {
	switch kind {
	case "RSPrimary", "Standalone", "Mongos", "LoadBalancer":
		return true
	}
	return false
}

func (r *waitReporter) topologyChanged(e *event.TopologyDescriptionChangedEvent) {
	up, known := false, false
	var kinds []string
	for _, s := range e.NewDescription.Servers {
		up = up || canServe(s.Kind)
		known = known || s.Kind != "Unknown"
		kinds = append(kinds, s.Addr.String()+" "+s.Kind)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	now := time.Now()
	noPrimary := func() {
		// Servers answer, but none can serve the stream.
		r.say("waiting for a primary: the deployment has %s", strings.Join(kinds, ", "))
		r.waiting, r.since, r.lastErr, r.lastSaid = true, now, "", now
	}
	if up == r.up {
		if !up && known && !r.waiting {
			noPrimary()
		}
		return
	}
	r.up = up
	switch {
	case up && r.waiting:
		r.say("connected to %s after %v", strings.Join(kinds, ", "), now.Sub(r.since).Round(100*time.Millisecond))
		r.waiting = false
	case up:
	case known:
		noPrimary()
	case r.ever:
		r.say("lost the deployment at %s; waiting for it to come back (the stream goes on from where it was)", r.hosts)
		r.waiting, r.since, r.lastErr, r.lastSaid = true, now, "", now
	}
	r.ever = r.ever || up
}

func (r *waitReporter) checkFailed(e *event.ServerHeartbeatFailedEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.up {
		return
	}
	msg := fmt.Sprint(e.Failure)
	now := time.Now()
	switch {
	case !r.waiting:
		r.say("waiting for the deployment at %s: %s", r.hosts, msg)
		r.waiting = true
	case msg != r.lastErr || now.Sub(r.lastSaid) >= stillWaitingEvery:
		r.say("still waiting for the deployment at %s (%v): %s", r.hosts, now.Sub(r.since).Round(time.Second), msg)
	default:
		return
	}
	r.lastErr, r.lastSaid = msg, now
}
