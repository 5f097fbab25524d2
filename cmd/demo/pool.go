package main

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// poolWatch follows the driver's connection pool, so that a write that
// failed because a fault cleared the pool can wait until it is ready again.
// After a server restart the driver clears its pool; a write that meets the
// cleared pool can fail even after the driver's own retry, as it can against
// a real server, and a careful writer tries again.
type poolWatch struct {
	mu    sync.Mutex
	ready chan struct{} // closed while the pool is ready
}

func newPoolWatch() *poolWatch {
	p := &poolWatch{ready: make(chan struct{})}
	close(p.ready)
	return p
}

// monitor returns the driver hook that feeds p.
func (p *poolWatch) monitor() *event.PoolMonitor {
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-p.ready:
			if e.Type == event.ConnectionPoolCleared {
				p.ready = make(chan struct{})
			}
		default:
			if e.Type == event.ConnectionPoolReady {
				close(p.ready)
			}
		}
	}}
}

// wait blocks until the pool is ready or ctx ends.
func (p *poolWatch) wait(ctx context.Context) error {
	p.mu.Lock()
	ready := p.ready
	p.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// transient reports whether a write error is one a retry can mend.
func transient(err error) bool {
	var le mongo.LabeledError
	return mongo.IsNetworkError(err) || errors.As(err, &le) && le.HasErrorLabel("RetryableWriteError")
}
