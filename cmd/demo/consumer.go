package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// consumer follows the orders with a Stream[stream.Event[Order]] that keeps
// its own checkpoint (Options.Name and Options.Store) and mends faults by
// itself. It opens a new stream only after it "crashed": then, like a
// restarted process, it watches again with the same Name and Store.
type consumer struct {
	orders *mongo.Collection
	store  stream.TokenStore
	tally  *tally
	out    *printer
	log    *slog.Logger
	ready  chan struct{} // closed once the first stream is open
	crash  chan struct{} // holds a token while a crash is armed

	mu    sync.Mutex
	stats []stream.Stats // of each stream, when it ended
}

func newConsumer(orders *mongo.Collection, store stream.TokenStore, t *tally, out *printer) *consumer {
	return &consumer{
		orders: orders, store: store, tally: t, out: out, log: out.logger(),
		ready: make(chan struct{}), crash: make(chan struct{}, 1),
	}
}

// run watches until ctx ends, opening a new stream after each crash. An
// error means a stream failed: the demo has no other way out of a fault
// than the stream's own.
func (c *consumer) run(ctx context.Context) error {
	for n := 1; ; n++ {
		s, err := stream.Watch[stream.Event[Order]](ctx, c.orders, nil, &stream.Options{
			Name:            checkpointName,
			Store:           c.store,
			CheckpointEvery: 1, // save at every commit: a crash repeats one event at most
			Logger:          c.log,
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch: %w", err)
		}
		// Before any event, Stats().Checkpoint is the checkpoint Watch
		// loaded and resumed after.
		if cp := s.Stats().Checkpoint; cp.Token.IsZero() {
			c.out.printf("-- stream %d: no checkpoint yet, watching from now\n", n)
		} else {
			c.out.printf("-- stream %d: resuming after checkpoint %s\n", n, describe(cp))
		}
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}

		crashed, err := c.follow(ctx, s)
		if crashed {
			// The loop was left as a dead process leaves it: the last
			// event was handled but never committed, so the next stream
			// delivers it again.
			st := s.Stats()
			c.record(st)
			c.out.printf("-- stream %d crashed: %s\n   its last event was handled but not committed: it comes again\n", n, describeStats(st))
			continue
		}
		// Close commits the last event returned and saves the checkpoint.
		cerr := s.Close(context.WithoutCancel(ctx))
		st := s.Stats()
		c.record(st)
		c.out.printf("-- stream %d closed: %s\n", n, describeStats(st))
		if err != nil {
			return fmt.Errorf("stream %d: %w", n, err)
		}
		if cerr != nil {
			return fmt.Errorf("stream %d: close: %w", n, cerr)
		}
		return nil
	}
}

// follow handles the events of s until ctx ends, the stream fails, or a
// crash armed by crashAfterNext happens after an event was handled. Each
// iteration of the All loop commits the event before; a crash returns from
// inside the loop, which closes the stream (and releases its FileStore's
// lock, as the operating system does for a process that dies) without
// committing the event just handled.
func (c *consumer) follow(ctx context.Context, s *stream.Stream[stream.Event[Order]]) (crashed bool, err error) {
	for ev, err := range s.All(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			return false, err
		}
		c.out.printf("  %s\n", line(ev))
		c.tally.saw(eventKey(ev))
		select {
		case <-c.crash:
			return true, nil
		default:
		}
	}
	return false, nil
}

// crashAfterNext arms a crash: the consumer stops after it handled the
// next event, without asking for another one.
func (c *consumer) crashAfterNext() {
	select {
	case c.crash <- struct{}{}:
	default:
	}
}

func (c *consumer) record(st stream.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats = append(c.stats, st)
}

// totals adds up the figures of the streams that ended.
func (c *consumer) totals() (streams int, resumes, rewatches int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stats {
		resumes += st.Resumes
		rewatches += st.Rewatches
	}
	return len(c.stats), resumes, rewatches
}

func describe(cp stream.Checkpoint) string {
	return fmt.Sprintf("%s (cluster time %d.%d)", short(cp.Token.String()), cp.ClusterTime.T, cp.ClusterTime.I)
}

// describeStats is the readable form of a stream's Stats.
func describeStats(st stream.Stats) string {
	return fmt.Sprintf("Stats: %s, %s by the driver, %s; last checkpoint %s",
		count(st.Events, "event"), count(st.Resumes, "resume"), count(st.Rewatches, "new watch"), describe(st.Checkpoint))
}

// line is the readable form of an event.
func line(ev stream.Event[Order]) string {
	id, _ := ev.DocumentKey.Lookup("_id").AsInt64OK()
	switch ev.OperationType {
	case stream.OpInsert:
		d := ev.FullDocument
		return fmt.Sprintf("%-6s  order %-3d %-7s qty %d", ev.OperationType, id, d.Item, d.Qty)
	case stream.OpUpdate:
		qty, _ := ev.UpdateDescription.UpdatedFields.Lookup("qty").AsInt64OK()
		return fmt.Sprintf("%-6s  order %-3d %-7s qty %d", ev.OperationType, id, "", qty)
	case stream.OpDelete:
		return fmt.Sprintf("%-6s  order %d", ev.OperationType, id)
	}
	return fmt.Sprintf("%s %s", ev.OperationType, ev.NS)
}
