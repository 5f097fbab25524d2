package stream

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrHandlerPanic is wrapped by the error of a Process handler (or
// DeadLetter) call that panicked: the panic is recovered and treated as
// that call's error, with the panic value and the stack in its message.
var ErrHandlerPanic = errors.New("changestream: Process handler panicked")

// HandlerError reports an event that Process could not handle: its
// handler failed on every attempt (ProcessOptions.MaxAttempts), or the
// event could not be decoded into the stream's type (then Err is the
// *DecodeError and Attempts is 0). ProcessOptions.DeadLetter receives it;
// without DeadLetter, Process stops and returns it.
type HandlerError struct {
	// Raw is the event as the server sent it. It is read-only and stays
	// valid after Process returns.
	Raw bson.Raw
	// Token is the event's resume token (its _id).
	Token Token
	// Key is the event's ordering key; "" for an event without one.
	Key string
	// Attempts is how many times the handler was called for the event.
	Attempts int
	// Err is the error of the last attempt.
	Err error
}

// Error describes the failure, naming the event's token.
func (e *HandlerError) Error() string {
	if e.Attempts == 0 {
		return fmt.Sprintf("changestream: event %s was not handled: %v", e.Token, e.Err)
	}
	return fmt.Sprintf("changestream: the handler failed %d times on event %s: %v", e.Attempts, e.Token, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *HandlerError) Unwrap() error { return e.Err }

// job is an event handed to a worker.
type job[T any] struct {
	seq       int64
	val       T
	raw       []byte
	tok       Token
	userKey   string // processEvent.userKey
	decodeErr error
	failed    int   // attempts that failed before (processEvent.failed)
	lastErr   error // the last of them
}

// result is a worker's report on a job.
type result struct {
	seq int64
	// done: the event is handled (by the handler or by DeadLetter) and may
	// be committed. Otherwise it is not, and err, when set, stops Process.
	done bool
	err  error
	// promoted: the event is the one intake ran and the watchdog promoted
	// (see processor.watch); seq is not set.
	promoted bool
}

// work runs jobs until jobs is closed, reporting each to box. stop is
// closed when Process stops, and jobs halted when a report of this or
// another worker will stop it: no new handler call starts after either (a
// job taken then is reported not done, so not committed). ctx is the
// handlers' context.
func (p *processor[T]) work(ctx context.Context, jobs *jobQueue[T], box *inbox[T], stop <-chan struct{}) {
	for {
		j, start, ok := jobs.get()
		if !ok {
			return
		}
		if start {
			select {
			case <-stop:
				start = false
			default:
			}
		}
		if !start {
			box.report(result{seq: j.seq})
			continue
		}
		box.report(p.handleJob(ctx, &j, jobs, box, stop))
	}
}

// handleJob handles j as a worker does: when its result will stop
// Process, no job starts from then on, nor a handler call on intake, even
// before run has seen the report.
func (p *processor[T]) handleJob(ctx context.Context, j *job[T], jobs *jobQueue[T], box *inbox[T], stop <-chan struct{}) result {
	r := p.handleTimed(ctx, j, stop)
	if r.err != nil {
		jobs.halt()
		box.halt()
	}
	return r
}

// handleTimed is handle, keeping how long it took in lastCall.
func (p *processor[T]) handleTimed(ctx context.Context, j *job[T], stop <-chan struct{}) result {
	t0 := time.Now()
	r := p.handle(ctx, j, stop)
	p.lastCall.Store(int64(time.Since(t0)))
	return r
}

// handle calls the handler for j until it succeeds or MaxAttempts calls
// failed (j.failed of them before), waiting with backoff between
// attempts, then hands a failed event to DeadLetter.
func (p *processor[T]) handle(ctx context.Context, j *job[T], stop <-chan struct{}) result {
	if j.decodeErr != nil {
		return p.fail(ctx, j, 0, j.decodeErr)
	}
	attempt, err := j.failed, j.lastErr
	for {
		if attempt > 0 {
			if ctx.Err() != nil {
				// The grace period is over: the event stays uncommitted.
				return result{seq: j.seq}
			}
			if attempt >= p.o.MaxAttempts {
				return p.fail(ctx, j, attempt, err)
			}
			delay := p.backoff.delay(attempt + 1)
			p.log.Debug("changestream: Process handler failed; retrying",
				"token", j.tok.String(), "attempt", attempt, "delay", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-stop:
				// Process stops: no new attempt; the event stays uncommitted.
				t.Stop()
				return result{seq: j.seq}
			}
		}
		attempt++
		if err = p.call(ctx, j.val); err == nil {
			return result{seq: j.seq, done: true}
		}
	}
}

// call calls the handler, turning a panic into an error.
func (p *processor[T]) call(ctx context.Context, v T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return p.handler(ctx, v)
}

// fail reports an event that was not handled: to DeadLetter, which decides
// whether Process goes on, or, without one, as the error Process stops with.
func (p *processor[T]) fail(ctx context.Context, j *job[T], attempts int, err error) result {
	key := j.userKey
	if p.o.Key == nil && j.decodeErr == nil {
		key, _ = documentKeyOf(j.raw)
	}
	he := &HandlerError{Raw: bson.Raw(j.raw), Token: j.tok, Key: key, Attempts: attempts, Err: err}
	if p.o.DeadLetter == nil {
		return result{seq: j.seq, err: he}
	}
	if err := p.deadLetter(ctx, he); err != nil {
		return result{seq: j.seq, err: err}
	}
	p.log.Debug("changestream: Process handed an event to DeadLetter", "token", j.tok.String(), "err", he.Err)
	return result{seq: j.seq, done: true}
}

// deadLetter calls DeadLetter, turning a panic into an error.
func (p *processor[T]) deadLetter(ctx context.Context, he *HandlerError) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w (in DeadLetter): %v\n%s", ErrHandlerPanic, r, debug.Stack())
		}
	}()
	return p.o.DeadLetter(ctx, he)
}
