package otelstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/otelstream"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// flakyStore is a MemoryStore whose saves fail while fail is set.
type flakyStore struct {
	stream.MemoryStore
	fail atomic.Bool
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Save(ctx context.Context, name string, cp stream.Checkpoint) error {
	if s.fail.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Save(ctx, name, cp)
}

// point is one data point read back through the manual reader.
type point struct {
	unit  string
	value float64
	attrs attribute.Set
	sum   bool // a cumulative, monotonic sum (a counter)
}

// collect reads every instrument of the package through r.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]point{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelstream.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, otelstream.ScopeName)
		}
		for _, m := range sm.Metrics {
			p := point{unit: m.Unit}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if len(d.DataPoints) != 1 {
					t.Fatalf("%s: %d points", m.Name, len(d.DataPoints))
				}
				p.value, p.attrs = float64(d.DataPoints[0].Value), d.DataPoints[0].Attributes
				p.sum = d.IsMonotonic && d.Temporality == metricdata.CumulativeTemporality
			case metricdata.Gauge[int64]:
				if len(d.DataPoints) != 1 {
					t.Fatalf("%s: %d points", m.Name, len(d.DataPoints))
				}
				p.value, p.attrs = float64(d.DataPoints[0].Value), d.DataPoints[0].Attributes
			case metricdata.Gauge[float64]:
				if len(d.DataPoints) != 1 {
					t.Fatalf("%s: %d points", m.Name, len(d.DataPoints))
				}
				p.value, p.attrs = d.DataPoints[0].Value, d.DataPoints[0].Attributes
			default:
				t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
			}
			got[m.Name] = p
		}
	}
	return got
}

// wantPoint is what a test expects of an instrument.
type wantPoint struct {
	unit  string
	value float64
	sum   bool // a cumulative counter
}

// TestMetrics reads the instruments back through the SDK's manual reader
// after a known sequence: three events in one batch, a resume of the
// driver, a checkpoint save that fails, a fourth event, a TryNext that
// finds the stream caught up, and Close.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.needMongotest(t, "failpoints")
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	store := &flakyStore{}
	start := f.clusterTime(t)
	f.insert(t, 1, 2, 3) // before the stream: its first batch holds all three
	s, err := stream.Watch[bson.Raw](f.ctx, f.coll, nil,
		&stream.Options{Name: "orders", Store: store, CheckpointEvery: 1, CheckpointInterval: time.Hour},
		options.ChangeStream().SetStartAtOperationTime(&start))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := otelstream.Register(provider, s, &otelstream.Options{Name: "orders",
		Database: f.coll.Database().Name(), Collection: "orders", Attributes: []attribute.KeyValue{attribute.String("region", "eu")}})
	if err != nil {
		t.Fatal(err)
	}

	before := collect(t, reader)
	if p := before["changestream.alive"]; p.value != 1 {
		t.Errorf("alive before any event = %v, want 1", p.value)
	}
	for _, name := range []string{"changestream.lag", "changestream.committed.lag", "changestream.checkpoint.age", "changestream.batch.size"} {
		if _, ok := before[name]; ok {
			t.Errorf("%s is reported before the stream knows it", name)
		}
	}

	next := func(id int32) {
		t.Helper()
		ev, err := s.Next(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Lookup("documentKey", "_id").Int32(); got != id {
			t.Fatalf("event for %d, want %d", got, id)
		}
	}
	next(1)
	if got := collect(t, reader); got["changestream.batches"].value != 1 || got["changestream.batch.size"].value != 3 {
		t.Errorf("after the first event: %v batches, the last of %v documents; want 1 of 3",
			got["changestream.batches"].value, got["changestream.batch.size"].value)
	}
	next(2) // commits and saves 1
	// The first getMore, the one after the batch in hand (fetched ahead
	// when event 3 is returned), fails with CursorNotFound: the driver
	// resumes, and the first batch of the resume holds event 4.
	f.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 43, ErrorLabels: []string{}, Times: 1})
	f.insert(t, 4)
	next(3) // commits and saves 2
	store.fail.Store(true)
	next(4) // commits 3; its save fails
	store.fail.Store(false)

	want := map[string]wantPoint{
		"changestream.events.delivered":    {"{event}", 4, true},
		"changestream.events.committed":    {"{event}", 3, true},
		"changestream.driver.resumes":      {"{resume}", 1, true},
		"changestream.rewatches":           {"{watch}", 0, true},
		"changestream.checkpoint.saves":    {"{save}", 2, true},
		"changestream.checkpoint.failures": {"{save}", 1, true},
		"changestream.batches":             {"{batch}", 2, true}, // events 1-3, then event 4 after the resume
		"changestream.batch.size":          {"{document}", 1, false},
		"changestream.alive":               {"1", 1, false},
		"changestream.caught_up":           {"1", 0, false}, // the last thing the server sent was event 4
		"changestream.events.in_flight":    {"{event}", 1, false},
	}
	wantAttrs := attribute.NewSet(
		attribute.String("changestream.stream", "orders"),
		attribute.String("db.system.name", "mongodb"),
		attribute.String("db.namespace", f.coll.Database().Name()),
		attribute.String("db.collection.name", "orders"),
		attribute.String("region", "eu"),
	)
	check := func(when string, got map[string]point) {
		t.Helper()
		for name, w := range want {
			p, ok := got[name]
			switch {
			case !ok:
				t.Errorf("%s: %s not reported", when, name)
			case p.value != w.value || p.unit != w.unit || p.sum != w.sum:
				t.Errorf("%s: %s = %v %s (counter %v), want %v %s (counter %v)", when, name, p.value, p.unit, p.sum, w.value, w.unit, w.sum)
			case !p.attrs.Equals(&wantAttrs):
				t.Errorf("%s: %s attributes %v, want %v", when, name, p.attrs.ToSlice(), wantAttrs.ToSlice())
			}
		}
		// Cluster times have whole seconds: a fresh event's lag is under
		// a few seconds and never negative.
		for _, name := range []string{"changestream.lag", "changestream.committed.lag", "changestream.checkpoint.age"} {
			if p, ok := got[name]; !ok || p.unit != "s" || p.value < 0 || p.value > 10 {
				t.Errorf("%s: %s = %+v, want a few seconds at most", when, name, p)
			}
		}
		if n := len(got); n != len(want)+3 {
			t.Errorf("%s: %d instruments reported, want %d", when, n, len(want)+3)
		}
	}
	check("after four events", collect(t, reader))

	// TryNext commits event 4 (and saves it), and its getMore comes back
	// empty: the stream is caught up, with nothing in flight.
	if _, ok, err := s.TryNext(f.ctx); ok || err != nil {
		t.Fatalf("TryNext = %v, %v; want no event", ok, err)
	}

	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	// TryNext committed and saved event 4; the empty batch's
	// postBatchResumeToken is event 4's own (the last of its batch), so
	// Close has nothing more to save.
	want["changestream.events.committed"] = wantPoint{"{event}", 4, true}
	want["changestream.checkpoint.saves"] = wantPoint{"{save}", 3, true}
	want["changestream.alive"] = wantPoint{"1", 0, false}
	want["changestream.caught_up"] = wantPoint{"1", 1, false}
	want["changestream.events.in_flight"] = wantPoint{"{event}", 0, false}
	check("after Close", collect(t, reader))

	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("after Unregister: %d instruments still reported", len(got))
	}
}

// TestMetricsSnapshotAndLease reads the snapshot and lease instruments
// back through the SDK's manual reader: a stream holding its lease
// (Options.LeaseTTL with a CollectionStore) starts with a snapshot of five
// documents, delivers two of them, the other three, then a change; then
// another instance takes its lease over.
func TestMetricsSnapshotAndLease(t *testing.T) {
	f := newFixture(t)
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	store, err := stream.NewCollectionStore(f.coll.Database().Collection("checkpoints"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.insert(t, 1, 2, 3, 4, 5)
	s, err := stream.Watch[stream.Event[bson.Raw]](f.ctx, f.coll, nil, &stream.Options{Name: "orders", Store: store,
		LeaseTTL: 10 * time.Second, NoCheckpoint: stream.StartWithSnapshot, CheckpointEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	reg, err := otelstream.Register(provider, s, &otelstream.Options{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()

	attrs := []attribute.KeyValue{
		attribute.String("changestream.stream", "orders"),
		attribute.String("db.system.name", "mongodb"),
	}
	base := attribute.NewSet(attrs...)
	ns := f.coll.Database().Name() + ".orders"
	withNS := attribute.NewSet(append(attrs, attribute.String("changestream.snapshot.namespace", ns))...)
	check := func(when string, want map[string]wantPoint, runningAttrs attribute.Set) {
		t.Helper()
		got := collect(t, reader)
		for name, w := range want {
			p, ok := got[name]
			wantAttrs := base
			if name == "changestream.snapshot.running" {
				wantAttrs = runningAttrs
			}
			switch {
			case !ok:
				t.Errorf("%s: %s not reported", when, name)
			case p.value != w.value || p.unit != w.unit || p.sum != w.sum:
				t.Errorf("%s: %s = %v %s (counter %v), want %v %s (counter %v)", when, name, p.value, p.unit, p.sum, w.value, w.unit, w.sum)
			case !p.attrs.Equals(&wantAttrs):
				t.Errorf("%s: %s attributes %v, want %v", when, name, p.attrs.ToSlice(), wantAttrs.ToSlice())
			}
		}
	}
	snapshot := func(running, copied, progress float64) map[string]wantPoint {
		return map[string]wantPoint{
			"changestream.snapshot.running":   {"1", running, false},
			"changestream.snapshot.copied":    {"{document}", copied, true},
			"changestream.snapshot.estimated": {"{document}", 5, false},
			"changestream.snapshot.progress":  {"1", progress, false},
			"changestream.lease.active":       {"1", 1, false},
			"changestream.lease.epoch":        {"{epoch}", 1, false},
		}
	}
	check("before the first event", snapshot(1, 0, 0), withNS)

	next := func(op stream.OperationType, id int32) {
		t.Helper()
		ev, err := s.Next(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.OperationType != op || bson.Raw(ev.DocumentKey).Lookup("_id").Int32() != id {
			t.Fatalf("event %s of %s, want %s of %d", ev.OperationType, ev.DocumentKey, op, id)
		}
	}
	next(stream.OpSnapshot, 1)
	next(stream.OpSnapshot, 2)
	check("after two snapshot events", snapshot(1, 2, 0.4), withNS)
	for id := int32(3); id <= 5; id++ {
		next(stream.OpSnapshot, id)
	}
	// The stream knows the scan is over once it looks past its last
	// document: at the first change.
	f.insert(t, 6)
	next(stream.OpInsert, 6)
	check("after the snapshot", snapshot(0, 5, 1), base)

	// Another instance takes the lease over, as a standby would after a
	// stall: the next save is refused and the stream ends. The epoch
	// stays this instance's own.
	if _, err := store.Collection().UpdateOne(f.ctx, bson.D{{Key: "_id", Value: "orders"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease.owner", Value: "other"}}}, {Key: "$inc", Value: bson.D{{Key: "lease.epoch", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	f.insert(t, 7)
	if _, err := s.Next(f.ctx); !errors.Is(err, stream.ErrLeaseLost) {
		t.Fatalf("Next after the takeover: %v, want ErrLeaseLost", err)
	}
	lost := snapshot(0, 5, 1)
	lost["changestream.lease.active"] = wantPoint{"1", 0, false}
	lost["changestream.alive"] = wantPoint{"1", 0, false}
	check("after the lease was lost", lost, base)
}
