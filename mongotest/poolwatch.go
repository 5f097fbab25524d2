package mongotest

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// PoolWatch follows a driver client's connection pool, so that a test's
// writer can get through the faults the test injects.
//
// When a fault drops connections (Restart, DropConnections, a failpoint
// that closes the connection), the driver clears its connection pool and
// keeps it paused until its monitor has checked the server again. A write
// that meets the paused pool fails, and can fail again on the driver's one
// retry. A real server does the same; an application retries, and so
// should a test's writer: Retry tries again once the pool is ready, without
// sleeping.
//
// Install the watch when connecting:
//
//	pw := mongotest.NewPoolWatch()
//	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetPoolMonitor(pw.Monitor()))
type PoolWatch struct {
	mu    sync.Mutex
	ready chan struct{} // closed while the pool is ready
}

// NewPoolWatch returns a watch that considers the pool ready.
func NewPoolWatch() *PoolWatch {
	p := &PoolWatch{ready: make(chan struct{})}
	close(p.ready)
	return p
}

// Monitor returns the driver hook to pass to options.Client().SetPoolMonitor.
// A client that already has a pool monitor can call Observe from it instead.
func (p *PoolWatch) Monitor() *event.PoolMonitor {
	return &event.PoolMonitor{Event: p.Observe}
}

// Observe records one driver pool event.
func (p *PoolWatch) Observe(e *event.PoolEvent) {
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
}

// Wait blocks until the pool is ready or ctx ends.
func (p *PoolWatch) Wait(ctx context.Context) error {
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

// Retry runs write, and runs it again while it fails with an error a retry
// can mend (a network error, or one labelled RetryableWriteError), each time
// once the pool is ready, at most RetryAttempts times in all. It returns the
// last error. Several attempts may be needed: after a fault the driver can
// clear its pool more than once in a row (an operation's error, then its
// monitor's), and a write can land between two clears. write must be safe to repeat: a write whose earlier try
// landed may then fail as a duplicate, which the caller can accept (see
// mongo.IsDuplicateKeyError).
func (p *PoolWatch) Retry(ctx context.Context, write func() error) error {
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil || attempt == RetryAttempts || !Transient(err) {
			return err
		}
		if werr := p.Wait(ctx); werr != nil {
			return err
		}
	}
}

// RetryAttempts is how many times Retry runs a write at most. Each attempt
// after the first waits until the pool is ready, so they are spent only
// while the driver is still settling after a fault.
const RetryAttempts = 10

// Transient reports whether err is one a retry of the same write can mend:
// a network error, a server or driver error labelled RetryableWriteError,
// or the driver's own "connection pool was cleared" error, which it returns
// unlabelled when its one retry met the paused pool again.
func Transient(err error) bool {
	var le mongo.LabeledError
	var re interface{ Retryable() bool }
	return mongo.IsNetworkError(err) ||
		errors.As(err, &le) && le.HasErrorLabel("RetryableWriteError") ||
		errors.As(err, &re) && re.Retryable()
}
