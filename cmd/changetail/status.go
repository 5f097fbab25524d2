package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// progress counts what the stream delivered; the status line reads it.
type progress struct {
	events   atomic.Int64
	position atomic.Uint64 // cluster time of the stream's position, T<<32 | I
}

// at records the stream's position.
func (p *progress) at(ts bson.Timestamp) {
	if !ts.IsZero() {
		p.position.Store(uint64(ts.T)<<32 | uint64(ts.I))
	}
}

// lag is how far the position is behind now, or -1 when unknown.
func (p *progress) lag(now time.Time) time.Duration {
	v := p.position.Load()
	if v == 0 {
		return -1
	}
	l := now.Sub(time.Unix(int64(v>>32), 0))
	if l < 0 {
		l = 0
	}
	return l
}

// statusLine formats the status: total events, the rate over the last
// interval, and the lag.
func statusLine(events int64, rate float64, lag time.Duration) string {
	l := "?"
	if lag >= 0 {
		l = lag.Truncate(time.Second).String()
	}
	return fmt.Sprintf("%d events  %.1f events/s  lag %s", events, rate, l)
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
	last, lastAt := sp.p.events.Load(), time.Now()
	for {
		select {
		case <-sp.done:
			return
		case now := <-t.C:
			n := sp.p.events.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			fmt.Fprintf(sp.w, "\r\x1b[K%s", statusLine(n, rate, sp.p.lag(now)))
		}
	}
}

// stop ends the loop and clears the line.
func (sp *statusPrinter) stop() {
	close(sp.done)
	sp.wg.Wait()
	fmt.Fprint(sp.w, "\r\x1b[K")
}
