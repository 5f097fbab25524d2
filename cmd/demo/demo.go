package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
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
	// updated, and every third one deleted. Zero means 16; less than 4
	// means 4, so that each phase of the run has writes.
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
	Streams    int           // streams the consumer opened
	Resumes    int64         // resumes the driver made by itself (Stats.Resumes, all streams)
	Rewatches  int64         // new watches the streams made (Stats.Rewatches, all streams)
	Elapsed    time.Duration // how long the run took
}

// String is the demo's last line: "N writes, N events, N lost", with the
// duplicates when there were any (at least once: an event handled but not
// yet committed when the consumer crashed comes again).
func (s Summary) String() string {
	str := fmt.Sprintf("%d writes, %d events, %d lost", s.Writes, s.Events, s.Lost)
	if s.Duplicates > 0 {
		str += ", " + count(int64(s.Duplicates), "duplicate")
	}
	return str
}

// checkpointName is Options.Name of the consumer's streams: the key of
// their checkpoint in the store.
const checkpointName = "demo-orders"

// run is the demo: a server, a writer and a consumer. It prints to w and
// returns the tally; an error means the demo itself could not run or the
// stream failed.
func run(ctx context.Context, w io.Writer, cfg Config) (Summary, error) {
	if cfg.Orders == 0 {
		cfg.Orders = 16
	}
	cfg.Orders = max(cfg.Orders, 4)
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
	dir, err := os.MkdirTemp("", "changestream-demo-")
	if err != nil {
		return Summary{}, err
	}
	defer os.RemoveAll(dir)
	store, err := stream.NewFileStore(dir)
	if err != nil {
		return Summary{}, err
	}
	out.printf("mongotest: an in-process replica set at %s\n", srv.URI())
	out.printf("watching shop.orders as Stream[Event[Order]], checkpoint %q in a FileStore, saved at every commit\n", checkpointName)

	tally := newTally()
	c := newConsumer(orders, store, tally, out)
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
		{"consumer crash: the consumer handles one more event, then dies before it commits it", c.crashAfterNext},
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
			out.printf("-- %s\n", faults[p].say)
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
	sum.Streams, sum.Resumes, sum.Rewatches = c.totals()
	sum.Elapsed = time.Since(start)
	if werr != nil {
		return sum, werr
	}
	if lost := tally.lostKeys(); len(lost) > 0 {
		out.printf("lost: %v\n", lost)
	}
	out.printf("%d streams; faults mended by %s by the driver and %s by the stream; 1 crash mended by the checkpoint\n",
		sum.Streams, count(sum.Resumes, "resume"), count(sum.Rewatches, "new watch"))
	out.printf("%s (%d faults, %s)\n", sum, sum.Faults, sum.Elapsed.Round(time.Millisecond))
	return sum, nil
}

// printer serialises the lines of the writer, the consumer and the
// streams' log.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// logger returns a logger that prints the stream's log lines at info level
// and above, indented, without the time and with tokens shortened.
func (p *printer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&logWriter{p: p}, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{}
			case "token":
				return slog.String(a.Key, short(a.Value.String()))
			}
			return a
		},
	}))
}

// logWriter writes each log record as one indented line.
type logWriter struct{ p *printer }

func (l *logWriter) Write(b []byte) (int, error) {
	l.p.printf("   log: %s", b)
	return len(b), nil
}

// count writes n and noun, in the plural unless n is 1.
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "h") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// short abbreviates a resume token for display.
func short(tok string) string {
	if len(tok) > 24 {
		return tok[:24] + "…"
	}
	return tok
}
