package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/go-changestream/changestream/stream"
)

// progress gives the status line the figures of the stream, once there is
// one.
type progress struct {
	mu    sync.Mutex
	stats func() stream.Stats
}

// follow makes progress report the figures of a stream (its Stats method).
func (p *progress) follow(stats func() stream.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = stats
}

// get returns the stream's figures; the zero Stats before there is a
// stream.
func (p *progress) get() stream.Stats {
	p.mu.Lock()
	f := p.stats
	p.mu.Unlock()
	if f == nil {
		return stream.Stats{}
	}
	return f()
}

// lagOf is how far the stream's position is behind the newest cluster
// time the server reported, or -1 when the stream knows no cluster time
// yet.
func lagOf(st stream.Stats) time.Duration {
	if st.ClusterTime.IsZero() {
		return -1
	}
	return st.Lag
}

// lagText is the status line's lag: "caught up" when the server had
// nothing more, "lag 10s", or "lag ?" before the stream knows a cluster
// time.
func lagText(st stream.Stats) string {
	switch lag := lagOf(st); {
	case st.CaughtUp:
		return "caught up"
	case lag < 0:
		return "lag ?"
	default:
		return "lag " + lag.Truncate(time.Second).String()
	}
}

// statusLine formats the status: total events, the rate over the last
// interval, and the lag.
func statusLine(events int64, rate float64, lag string) string {
	return fmt.Sprintf("%d events  %.1f events/s  %s", events, rate, lag)
}

// isTerminal reports whether w is a terminal. Tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// statusPrinter rewrites one line of a terminal every interval until stop.
type statusPrinter struct {
	w    io.Writer
	p    *progress
	done chan struct{}
	wg   sync.WaitGroup
}

const statusInterval = 500 * time.Millisecond

func startStatus(w io.Writer, p *progress) *statusPrinter {
	sp := &statusPrinter{w: w, p: p, done: make(chan struct{})}
	sp.wg.Add(1)
	go sp.loop()
	return sp
}

func (sp *statusPrinter) loop() {
	defer sp.wg.Done()
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	last, lastAt := sp.p.get().Events, time.Now()
	for {
		select {
		case <-sp.done:
			return
		case now := <-t.C:
			st := sp.p.get()
			rate := float64(st.Events-last) / now.Sub(lastAt).Seconds()
			last, lastAt = st.Events, now
			line := statusLine(st.Events, rate, lagText(st))
			if st.Snapshot.Running {
				line = snapshotLine(st.Snapshot) // snapshot.go
			}
			fmt.Fprintf(sp.w, "\r\x1b[K%s", line)
		}
	}
}

// stop ends the loop and clears the line.
func (sp *statusPrinter) stop() {
	close(sp.done)
	sp.wg.Wait()
	fmt.Fprint(sp.w, "\r\x1b[K")
}
