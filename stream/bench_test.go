package stream_test

// Benchmarks of docs/performance.md. One op is one change event, so
// allocs/op is allocations per event; events/s and events/cpu-s (per second
// of the process's CPU time) are reported too. mongotest runs in the same
// process: its work is in every figure. Print the ratio table with:
//
//	go test -run '^$' -bench . -benchmem -benchtime 10000x -count 5 ./stream/ | go run ./internal/benchtable
//
// -benchtime 10000x is a multiple of every pool below: each stream then
// reads its whole pool. With a smaller b.N the server would still render
// and send whole batches (up to 16 MiB with the default batch size) of
// which only a part is read, and that waste would count against each event.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// benchOrder is the document type of the benchmarks: an order with line
// items and a free-text note.
type benchOrder struct {
	ID       bson.ObjectID `bson:"_id"`
	Customer string        `bson:"customer"`
	Status   string        `bson:"status"`
	Total    float64       `bson:"total"`
	Created  time.Time     `bson:"created"`
	Lines    []benchLine   `bson:"lines"`
	Note     string        `bson:"note"`
}

type benchLine struct {
	SKU   string  `bson:"sku"`
	Qty   int32   `bson:"qty"`
	Price float64 `bson:"price"`
}

// benchDriverEvent is what a raw-driver user decodes a change event into:
// the fields of stream.Event[benchOrder], with bson tags, decoded by the
// driver's reflection.
type benchDriverEvent struct {
	ID                       bson.Raw        `bson:"_id"`
	OperationType            string          `bson:"operationType"`
	NS                       benchNS         `bson:"ns"`
	To                       *benchNS        `bson:"to,omitempty"`
	DocumentKey              bson.Raw        `bson:"documentKey,omitempty"`
	FullDocument             *benchOrder     `bson:"fullDocument,omitempty"`
	FullDocumentBeforeChange *benchOrder     `bson:"fullDocumentBeforeChange,omitempty"`
	UpdateDescription        *benchUpdate    `bson:"updateDescription,omitempty"`
	ClusterTime              bson.Timestamp  `bson:"clusterTime"`
	WallTime                 time.Time       `bson:"wallTime"`
	TxnNumber                *int64          `bson:"txnNumber,omitempty"`
	LSID                     bson.Raw        `bson:"lsid,omitempty"`
	CollectionUUID           *bson.Binary    `bson:"collectionUUID,omitempty"`
	OperationDescription     bson.Raw        `bson:"operationDescription,omitempty"`
	NSType                   string          `bson:"nsType,omitempty"`
	SplitEvent               *benchSplitInfo `bson:"splitEvent,omitempty"`
}

type benchNS struct {
	DB   string `bson:"db"`
	Coll string `bson:"coll"`
}

type benchUpdate struct {
	UpdatedFields      bson.Raw `bson:"updatedFields"`
	RemovedFields      []string `bson:"removedFields"`
	TruncatedArrays    []bson.Raw
	DisambiguatedPaths bson.Raw `bson:"disambiguatedPaths,omitempty"`
}

type benchSplitInfo struct {
	Fragment int32 `bson:"fragment"`
	Of       int32 `bson:"of"`
}

// benchShape is one document size of the benchmarks.
type benchShape struct {
	name  string
	lines int // line items
	note  int // bytes of note
	pool  int // events prefilled; a stream reads them, then a new one starts
}

var benchShapes = []benchShape{
	{name: "300B", lines: 3, note: 40, pool: 10000},
	{name: "4KB", lines: 30, note: 2200, pool: 5000},
}

func (sh benchShape) order(i int) benchOrder {
	o := benchOrder{
		ID:       bson.NewObjectID(),
		Customer: fmt.Sprintf("customer-%06d", i%5000),
		Status:   "paid",
		Total:    float64(i%1000) + 0.99,
		Created:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Note:     strings.Repeat("n", sh.note),
	}
	for j := range sh.lines {
		o.Lines = append(o.Lines, benchLine{SKU: fmt.Sprintf("sku-%06d", j), Qty: int32(j%5 + 1), Price: 9.99})
	}
	return o
}

// benchEnv is a mongotest server prefilled with a shape's insert events.
type benchEnv struct {
	srv    *mongotest.Server
	client *mongo.Client
	coll   *mongo.Collection
	start  bson.Timestamp // a stream that starts here sees the pool
	shape  benchShape
	docs   []bson.Raw // the Order documents, as inserted
	events []bson.Raw // the change events of the pool, as the server sends them
}

// benchEvents holds the documents and events of each shape once a
// benchmark has prefilled a server with them: BenchmarkDecode reuses them.
var benchEvents = map[string]*benchEnv{}

func newBenchEnv(b *testing.B, sh benchShape) *benchEnv {
	b.Helper()

	srv := mongotest.New(b, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ctx := context.Background()
	env := &benchEnv{srv: srv, client: client, coll: client.Database("bench").Collection("orders"), shape: sh}
	t := srv.ClusterTime()
	env.start = bson.Timestamp{T: t.T, I: t.I + 1}
	const chunk = 2000
	for i := 0; i < sh.pool; i += chunk {
		docs := make([]any, 0, chunk)
		for j := i; j < min(i+chunk, sh.pool); j++ {
			raw, err := bson.Marshal(sh.order(j))
			if err != nil {
				b.Fatal(err)
			}
			env.docs = append(env.docs, raw)
			docs = append(docs, bson.Raw(raw))
		}
		if _, err := env.coll.InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	// The events, for the in-memory benchmarks.
	s, err := stream.Watch[bson.Raw](ctx, env.coll, nil, nil, env.csOpts(0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	for range sh.pool {
		ev, err := s.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		env.events = append(env.events, ev)
	}
	if sh.pool > 0 { // BenchmarkLatency's empty pool must not replace a full one
		benchEvents[sh.name] = &benchEnv{shape: sh, docs: env.docs, events: env.events}
	}
	return env
}

// csOpts starts a stream at the first event of the pool.
func (env *benchEnv) csOpts(batch int32) *options.ChangeStreamOptionsBuilder {
	o := options.ChangeStream().SetStartAtOperationTime(&env.start)
	if batch > 0 {
		o.SetBatchSize(batch)
	}
	return o
}

// reader reads n events (at most a pool's worth) from a new stream that
// starts at the first event of the pool, decoding each.
type reader func(ctx context.Context, env *benchEnv, batch int32, n int) error

func runReader(b *testing.B, env *benchEnv, batch int32, read reader) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU()
	b.ResetTimer()
	for left := b.N; left > 0; {
		n := min(left, env.shape.pool)
		if err := read(ctx, env, batch, n); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	b.StopTimer()
	reportRates(b, cpu)
}

// reportRates reports events/s and, where the platform measures it,
// events per CPU second of the whole process (mongotest included) since
// cpu.
func reportRates(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if used := processCPU() - cpu; cpu > 0 && used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "events/cpu-s")
	}
}

// readDriver is the raw driver: ChangeStream.Next and Decode.
func readDriver(ctx context.Context, env *benchEnv, batch int32, n int) error {
	cs, err := env.coll.Watch(ctx, mongo.Pipeline{}, env.csOpts(batch))
	if err != nil {
		return err
	}
	defer cs.Close(ctx)
	for range n {
		if !cs.Next(ctx) {
			return fmt.Errorf("driver stream ended: %v", cs.Err())
		}
		var ev benchDriverEvent
		if err := cs.Decode(&ev); err != nil {
			return err
		}
	}
	return nil
}

// readNext is Stream[T].Next.
func readNext[T any](opts *stream.Options) reader {
	return func(ctx context.Context, env *benchEnv, batch int32, n int) error {
		s, err := stream.Watch[T](ctx, env.coll, nil, opts, env.csOpts(batch))
		if err != nil {
			return err
		}
		defer s.Close(ctx)
		for range n {
			if _, err := s.Next(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// readAll is a range loop over Stream[Event[Order]].All.
func readAll(ctx context.Context, env *benchEnv, batch int32, n int) error {
	return readAllWith(nil)(ctx, env, batch, n)
}

// readAllWith is readAll with opts.
func readAllWith(opts *stream.Options) reader {
	return func(ctx context.Context, env *benchEnv, batch int32, n int) error {
		return readAllOpts(ctx, env, batch, n, opts)
	}
}

func readAllOpts(ctx context.Context, env *benchEnv, batch int32, n int, opts *stream.Options) error {
	s, err := stream.Watch[stream.Event[benchOrder]](ctx, env.coll, nil, opts, env.csOpts(batch))
	if err != nil {
		return err
	}
	got := 0
	for _, err := range s.All(ctx) {
		if err != nil {
			return err
		}
		if got++; got == n {
			break
		}
	}
	if got != n {
		return fmt.Errorf("All ended after %d events", got)
	}
	return nil
}

// readBatches is a range loop over Stream[Event[Order]].Batches with
// batches of max events.
func readBatches(max int) reader {
	return func(ctx context.Context, env *benchEnv, batch int32, n int) error {
		s, err := stream.Watch[stream.Event[benchOrder]](ctx, env.coll, nil, nil, env.csOpts(batch))
		if err != nil {
			return err
		}
		got := 0
		for evs, err := range s.Batches(ctx, min(max, n), time.Second) {
			if err != nil {
				return err
			}
			if got += len(evs); got >= n {
				break
			}
			if n-got < max {
				// The last batch would wait for events past the pool.
				for range n - got {
					if _, err := s.Next(ctx); err != nil {
						return err
					}
				}
				got = n
				break
			}
		}
		if got != n {
			return fmt.Errorf("Batches ended after %d events", got)
		}
		return nil
	}
}

// BenchmarkThroughput reads prefilled insert events through the raw driver
// and each form of Stream, on mongotest over loopback. The forms of one
// document shape and batch size are one benchmark that alternates them
// (runInterleaved): each reads the whole pool in turn, so that they all
// see the same machine load and their ratios to the driver hold within
// one run.
func BenchmarkThroughput(b *testing.B) {
	rounds := map[string]*int{} // per group, across the -count runs
	for _, sh := range benchShapes {
		env := newBenchEnv(b, sh)
		for _, batch := range []int32{0, 1000} {
			bname := "default"
			if batch > 0 {
				bname = fmt.Sprint(batch)
			}
			forms := []interleavedForm{
				{"driver", readDriver},
				{"All", readAll},
				{"Next", readNext[stream.Event[benchOrder]](nil)},
				{"Next-noprefetch", readNext[stream.Event[benchOrder]](&stream.Options{DisablePrefetch: true})},
				{"All-decodeahead", readAllWith(&stream.Options{DecodeAhead: true})},
				{"Next-decodeahead", readNext[stream.Event[benchOrder]](&stream.Options{DecodeAhead: true})},
				{"Raw", readNext[bson.Raw](nil)},
				{"Batches-1000", readBatches(1000)},
			}
			name := fmt.Sprintf("doc=%s/batch=%s", sh.name, bname)
			if rounds[name] == nil {
				rounds[name] = new(int)
			}
			b.Run(name, func(b *testing.B) {
				runInterleaved(b, env, batch, rounds[name], forms)
			})
		}
	}
}

// BenchmarkDecode decodes the same events in memory: the floor is
// bson.Unmarshal of the Order document alone; plan is what Stream does
// with that document (its compiled decode plan); event is what Stream does
// for Event[Order]; driver is what ChangeStream.Decode does (the driver's
// streaming decoder into benchDriverEvent).
func BenchmarkDecode(b *testing.B) {
	reg := bson.NewRegistry()
	for _, sh := range benchShapes {
		env := benchEvents[sh.name] // prefilled by BenchmarkThroughput in this run
		if env == nil {
			env = newBenchEnv(b, sh)
		}
		b.Run("doc="+sh.name+"/form=floor", func(b *testing.B) {
			runDecode(b, env.docs, func(doc bson.Raw) error {
				var o benchOrder
				return bson.Unmarshal(doc, &o)
			})
		})
		b.Run("doc="+sh.name+"/form=plan", func(b *testing.B) {
			dec := stream.DocDecoderAsStream[benchOrder](reg)
			runDecode(b, env.docs, func(doc bson.Raw) error {
				_, err := dec(doc)
				return err
			})
		})
		b.Run("doc="+sh.name+"/form=event", func(b *testing.B) {
			dec := stream.EventDecoderAsStream[benchOrder](reg)
			runDecode(b, env.events, func(ev bson.Raw) error {
				_, err := dec(ev)
				return err
			})
		})
		b.Run("doc="+sh.name+"/form=driver", func(b *testing.B) {
			runDecode(b, env.events, func(ev bson.Raw) error {
				var e benchDriverEvent
				return bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(ev))).Decode(&e)
			})
		})
	}
}

func runDecode(b *testing.B, docs []bson.Raw, decode func(bson.Raw) error) {
	b.ReportAllocs()
	cpu := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := decode(docs[i%len(docs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRates(b, cpu)
}

// BenchmarkLatency measures write-to-delivery time on an idle stream: from
// the start of InsertOne to the return of Next in another goroutine.
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	env := newBenchEnv(b, benchShape{name: "300B", lines: 3, note: 40, pool: 0})
	s, err := stream.Watch[stream.Event[benchOrder]](ctx, env.coll, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	delivered := make(chan time.Time)
	failed := make(chan error, 1)
	go func() {
		for {
			if _, err := s.Next(ctx); err != nil {
				failed <- err
				return
			}
			delivered <- time.Now()
		}
	}()
	doc := env.shape.order(1)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		doc.ID = bson.NewObjectID()
		start := time.Now()
		if _, err := env.coll.InsertOne(ctx, doc); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-delivered:
			lat = append(lat, at.Sub(start))
		case err := <-failed:
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	_ = s.Close(ctx)
	select {
	case err := <-failed:
		if err != stream.ErrClosed {
			b.Error(err)
		}
	case <-delivered:
	}
}
