package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Order is the document the demo writes and the type its events carry.
type Order struct {
	ID   int    `bson:"_id"`  // the order number
	Item string `bson:"item"` // what was ordered
	Qty  int    `bson:"qty"`  // how many
}

// Config sets the size of a demo run. The zero value is the run that
// go run ./cmd/demo shows.
type Config struct {
	// Orders is how many orders the writer creates; each is inserted and
	// updated, and every third one deleted. Zero means 16.
	Orders int
	// CatchUp bounds how long the writer waits for the consumer to see
	// every write before it injects the next fault. Zero means 3s.
	CatchUp time.Duration
}

// Summary is the outcome of a run.
type Summary struct {
	Writes     int           // writes acknowledged by the server
	Events     int           // events the consumer handled, duplicates included
	Lost       int           // writes whose event never arrived
	Duplicates int           // events handled more than once
	Faults     int           // faults injected
	Elapsed    time.Duration // how long the run took
}

// String is the demo's last line: "N writes, N events, N lost", with the
// duplicates when there were any.
func (s Summary) String() string {
	str := fmt.Sprintf("%d writes, %d events, %d lost", s.Writes, s.Events, s.Lost)
	if s.Duplicates > 0 {
		str += fmt.Sprintf(", %d duplicates", s.Duplicates)
	}
	return str
}

// checkpointName is the stream name under which the consumer keeps its
// checkpoint.
const checkpointName = "demo-orders"

// run is the demo: a server, a writer and a consumer. It prints to w and
// returns the tally; an error means the demo itself could not run.
func run(ctx context.Context, w io.Writer, cfg Config) (Summary, error) {
	if cfg.Orders <= 0 {
		cfg.Orders = 16
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = 3 * time.Second
	}
	start := time.Now()
	out := &printer{w: w}

	srv, err := mongotest.NewServer(nil)
	if err != nil {
		return Summary{}, err
	}
	defer srv.Close()
	pool := mongotest.NewPoolWatch()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetPoolMonitor(pool.Monitor()))
	if err != nil {
		return Summary{}, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	orders := client.Database("shop").Collection("orders")
	out.printf("mongotest: an in-process replica set at %s\n", srv.URI())
	out.printf("watching shop.orders as Stream[Event[Order]]; checkpoints in a MemoryStore\n")

	tally := newTally()
	c := &consumer{orders: orders, store: &stream.MemoryStore{}, tally: tally, out: out, ready: make(chan struct{})}
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	cerr := make(chan error, 1)
	go func() { cerr <- c.run(cctx) }()
	select {
	case <-c.ready:
	case err := <-cerr:
		return Summary{}, err
	}

	wr := &writer{orders: orders, tally: tally, pool: pool}
	script := wr.script(cfg.Orders)
	faults := []struct {
		say    string
		inject func()
	}{
		{"network fault: the server drops every connection", srv.DropConnections},
		{"server restart: connections dropped, cursors killed, data kept", srv.Restart},
		{"consumer restart: the stream is abandoned and a new one resumes from the checkpoint", c.abandon},
	}
	phases := len(faults) + 1
	var faultCount int
	var werr error
	for p := range phases {
		lo, hi := p*len(script)/phases, (p+1)*len(script)/phases
		for _, wf := range script[lo:hi] {
			if werr = wf(ctx); werr != nil {
				break
			}
		}
		if werr != nil {
			break
		}
		tally.waitSeen(ctx, cfg.CatchUp)
		if p < len(faults) {
			out.printf("-- %s\n   checkpoint: %s\n", faults[p].say, c.checkpoint(ctx))
			faults[p].inject()
			faultCount++
		}
	}
	stopConsumer()
	if err := <-cerr; err != nil && werr == nil {
		werr = err
	}

	sum := tally.summary()
	sum.Faults = faultCount
	sum.Elapsed = time.Since(start)
	if werr != nil {
		return sum, werr
	}
	if lost := tally.lostKeys(); len(lost) > 0 {
		out.printf("lost: %v\n", lost)
	}
	out.printf("%s (%d faults, %s)\n", sum, sum.Faults, sum.Elapsed.Round(time.Millisecond))
	return sum, nil
}

// printer serialises the lines of the writer and the consumer.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// tally is the check of the demo: every write registers the key its event
// must carry before it is sent, and the consumer marks the keys it sees.
type tally struct {
	mu       sync.Mutex
	expected []string
	seen     map[string]int
	events   int
	wake     chan struct{} // closed and replaced on every event
}

func newTally() *tally {
	return &tally{seen: make(map[string]int), wake: make(chan struct{})}
}

func (t *tally) expect(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expected = append(t.expected, key)
}

// unexpect withdraws the key of a write that failed.
func (t *tally) unexpect(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.expected); n > 0 && t.expected[n-1] == key {
		t.expected = t.expected[:n-1]
	}
}

func (t *tally) saw(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[key]++
	t.events++
	close(t.wake)
	t.wake = make(chan struct{})
}

// waitSeen waits until every expected key was seen, ctx ends or d passes.
func (t *tally) waitSeen(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		done := len(t.lostLocked()) == 0
		wake := t.wake
		t.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-wake:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (t *tally) lostLocked() []string {
	var lost []string
	for _, k := range t.expected {
		if t.seen[k] == 0 {
			lost = append(lost, k)
		}
	}
	return lost
}

func (t *tally) lostKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lostLocked()
}

func (t *tally) summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Writes: len(t.expected), Events: t.events, Lost: len(t.lostLocked())}
	for _, n := range t.seen {
		if n > 1 {
			s.Duplicates += n - 1
		}
	}
	return s
}

// Keys that identify the event of each write.
func insertKey(id int) string  { return fmt.Sprintf("insert #%d", id) }
func updateKey(seq int) string { return fmt.Sprintf("update seq %d", seq) }
func deleteKey(id int) string  { return fmt.Sprintf("delete #%d", id) }

// eventKey returns the key of an event, as the writer registered it.
func eventKey(ev stream.Event[Order]) string {
	id, _ := ev.DocumentKey.Lookup("_id").AsInt64OK()
	switch ev.OperationType {
	case stream.OpInsert:
		return insertKey(int(id))
	case stream.OpUpdate:
		seq, _ := ev.UpdateDescription.UpdatedFields.Lookup("seq").AsInt64OK()
		return updateKey(int(seq))
	case stream.OpDelete:
		return deleteKey(int(id))
	}
	return string(ev.OperationType)
}

// writer makes the changes the consumer follows.
type writer struct {
	orders *mongo.Collection
	tally  *tally
	pool   *mongotest.PoolWatch
	seq    int
}

var items = []string{"tea", "cake", "jam", "bread", "honey", "scones", "butter", "cream"}

// script returns the writes of a run: for each order an insert and an
// update, and for every third one a delete.
func (wr *writer) script(n int) []func(context.Context) error {
	var s []func(context.Context) error
	for i := 1; i <= n; i++ {
		s = append(s, func(ctx context.Context) error {
			return wr.do(ctx, insertKey(i), func() error {
				_, err := wr.orders.InsertOne(ctx, Order{ID: i, Item: items[i%len(items)], Qty: 1 + i%3})
				return err
			})
		})
		s = append(s, func(ctx context.Context) error {
			wr.seq++
			seq := wr.seq
			return wr.do(ctx, updateKey(seq), func() error {
				_, err := wr.orders.UpdateByID(ctx, i, bson.D{
					{Key: "$inc", Value: bson.D{{Key: "qty", Value: 1}}},
					{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}},
				})
				return err
			})
		})
		if i%3 == 0 {
			s = append(s, func(ctx context.Context) error {
				return wr.do(ctx, deleteKey(i), func() error {
					_, err := wr.orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: i}})
					return err
				})
			})
		}
	}
	return s
}

// do registers key and runs write; a failed write is withdrawn. A write
// that fails of a fault is tried again once the driver's pool is ready; an
// insert whose earlier try landed reports a duplicate key, which counts as
// done.
func (wr *writer) do(ctx context.Context, key string, write func() error) error {
	wr.tally.expect(key)
	tries := 0
	err := wr.pool.Retry(ctx, func() error {
		tries++
		if err := write(); err != nil && !(tries > 1 && mongo.IsDuplicateKeyError(err)) {
			return err
		}
		return nil
	})
	if err != nil {
		wr.tally.unexpect(key)
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// consumer follows the orders with a Stream[stream.Event[Order]] and keeps
// a checkpoint after each event it has handled.
type consumer struct {
	orders *mongo.Collection
	store  stream.TokenStore
	tally  *tally
	out    *printer
	ready  chan struct{} // closed once the first stream is open

	mu  sync.Mutex
	cur *stream.Stream[stream.Event[Order]]
}

// run watches until ctx ends. When a stream ends, for a fault or because
// it was abandoned, it watches again from the checkpoint.
func (c *consumer) run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		s, err := c.watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if fatal(err) || attempt >= 10 {
				return err
			}
			c.out.printf("-- watch failed: %v; retrying\n", err)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			backoff *= 2
			continue
		}
		backoff = 50 * time.Millisecond
		err = c.follow(ctx, s)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if fatal(err) {
				return err
			}
			c.out.printf("-- stream ended: %v; watching again from the checkpoint\n", err)
		}
	}
}

// watch opens a stream after the saved checkpoint, or from now when there
// is none yet.
func (c *consumer) watch(ctx context.Context) (*stream.Stream[stream.Event[Order]], error) {
	csOpts := options.ChangeStream()
	cp, err := c.store.Load(ctx, checkpointName)
	switch {
	case err == nil:
		csOpts.SetResumeAfter(cp.Token.Raw())
		c.out.printf("-- resuming after checkpoint %s\n", describe(cp))
	case !errors.Is(err, stream.ErrNoCheckpoint):
		return nil, err
	}
	s, err := stream.Watch[stream.Event[Order]](ctx, c.orders, nil, nil, csOpts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	return s, nil
}

// follow handles the events of s until it ends: the loop from the README,
// with a checkpoint saved after each event is handled.
func (c *consumer) follow(ctx context.Context, s *stream.Stream[stream.Event[Order]]) error {
	for ev, err := range s.All(ctx) {
		if err != nil {
			return err
		}
		c.out.printf("  %s\n", line(ev))
		c.tally.saw(eventKey(ev))
		cp := stream.Checkpoint{Token: s.ResumeToken(), ClusterTime: ev.ClusterTime, WallTime: ev.WallTime}
		if err := c.store.Save(ctx, checkpointName, cp); err != nil {
			return err
		}
	}
	return nil
}

// abandon closes the current stream from outside the loop, as a consumer
// that stops would; run then resumes from the checkpoint.
func (c *consumer) abandon() {
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s != nil {
		s.Close(context.Background())
	}
}

// checkpoint describes the saved checkpoint.
func (c *consumer) checkpoint(ctx context.Context) string {
	cp, err := c.store.Load(ctx, checkpointName)
	if err != nil {
		return "none"
	}
	return describe(cp)
}

func describe(cp stream.Checkpoint) string {
	tok := cp.Token.String()
	if len(tok) > 24 {
		tok = tok[:24] + "…"
	}
	return fmt.Sprintf("%s (cluster time %d.%d)", tok, cp.ClusterTime.T, cp.ClusterTime.I)
}

// fatal reports the errors a new watch cannot mend.
func fatal(err error) bool {
	return errors.Is(err, stream.ErrHistoryLost) || errors.Is(err, stream.ErrInvalidToken) ||
		errors.Is(err, stream.ErrFatal) || errors.Is(err, stream.ErrEventTooLarge)
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
