package otelstream

import (
	"context"
	"errors"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the name of the meter this package's instruments belong to.
const ScopeName = "github.com/go-changestream/changestream/otelstream"

// Source is what this package reads: a *stream.Stream[T] of any T.
type Source interface {
	Stats() stream.Stats
	Alive() bool
}

// Options says how a stream's measurements are labelled.
type Options struct {
	// Name is the changestream.stream attribute: usually the stream's own
	// stream.Options.Name. It is required, as it tells apart the streams
	// of one program.
	Name string

	// Database and Collection are the db.namespace and db.collection.name
	// attributes of what the stream watches; each is left out when empty
	// (a stream on a whole deployment has neither).
	Database, Collection string

	// Attributes are added to every measurement.
	Attributes []attribute.KeyValue
}

// Registration is the instruments of one stream, registered with a
// MeterProvider until Unregister.
type Registration struct {
	reg metric.Registration
}

// Unregister stops reporting the stream. The stream itself is not
// touched; call it before or after the stream's Close.
func (r *Registration) Unregister() error {
	return r.reg.Unregister()
}

// instruments are the observable instruments of a meter.
type instruments struct {
	delivered, committed, resumes, rewatches metric.Int64ObservableCounter
	saves, failures, batches                 metric.Int64ObservableCounter
	checkpointAge, lag, committedLag         metric.Float64ObservableGauge
	batchSize, alive, caughtUp               metric.Int64ObservableGauge
	inFlight                                 metric.Int64ObservableUpDownCounter
	snapCopied                               metric.Int64ObservableCounter
	snapEstimated, snapRunning               metric.Int64ObservableGauge
	snapProgress                             metric.Float64ObservableGauge
	leaseActive, leaseEpoch                  metric.Int64ObservableGauge
}

func newInstruments(m metric.Meter) (*instruments, error) {
	var in instruments
	var errs []error
	counter := func(dst *metric.Int64ObservableCounter, name, unit, desc string) {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		*dst = c
	}
	counter(&in.delivered, "changestream.events.delivered", "{event}", "Events the stream delivered to the consumer.")
	counter(&in.committed, "changestream.events.committed", "{event}", "Events whose position was committed.")
	counter(&in.resumes, "changestream.driver.resumes", "{resume}", "Resumes the driver made by itself.")
	counter(&in.rewatches, "changestream.rewatches", "{watch}", "New watches the stream made after a failure or an invalidate.")
	counter(&in.saves, "changestream.checkpoint.saves", "{save}", "Checkpoints saved.")
	counter(&in.failures, "changestream.checkpoint.failures", "{save}", "Checkpoint saves that failed.")
	counter(&in.batches, "changestream.batches", "{batch}", "Batches of the server that brought documents.")
	counter(&in.snapCopied, "changestream.snapshot.copied", "{document}", "Documents the snapshot delivered, those of earlier runs of a resumed snapshot included.")
	var err error
	in.checkpointAge, err = m.Float64ObservableGauge("changestream.checkpoint.age", metric.WithUnit("s"),
		metric.WithDescription("Time since the last checkpoint was saved."))
	errs = append(errs, err)
	in.lag, err = m.Float64ObservableGauge("changestream.lag", metric.WithUnit("s"),
		metric.WithDescription("How far the stream's position is behind the clock."))
	errs = append(errs, err)
	in.committedLag, err = m.Float64ObservableGauge("changestream.committed.lag", metric.WithUnit("s"),
		metric.WithDescription("How far the committed position, where a restart would resume, is behind the newest cluster time the server reported."))
	errs = append(errs, err)
	in.caughtUp, err = m.Int64ObservableGauge("changestream.caught_up", metric.WithUnit("1"),
		metric.WithDescription("1 when the server had nothing after the last event delivered, else 0."))
	errs = append(errs, err)
	in.inFlight, err = m.Int64ObservableUpDownCounter("changestream.events.in_flight", metric.WithUnit("{event}"),
		metric.WithDescription("Events delivered and not committed yet."))
	errs = append(errs, err)
	in.batchSize, err = m.Int64ObservableGauge("changestream.batch.size", metric.WithUnit("{document}"),
		metric.WithDescription("Documents in the latest batch of the server that brought any."))
	errs = append(errs, err)
	in.alive, err = m.Int64ObservableGauge("changestream.alive", metric.WithUnit("1"),
		metric.WithDescription("1 while the stream may deliver more events, 0 once it ended."))
	errs = append(errs, err)
	in.snapEstimated, err = m.Int64ObservableGauge("changestream.snapshot.estimated", metric.WithUnit("{document}"),
		metric.WithDescription("Estimated documents of the snapshot's collections when the scan began or resumed."))
	errs = append(errs, err)
	in.snapRunning, err = m.Int64ObservableGauge("changestream.snapshot.running", metric.WithUnit("1"),
		metric.WithDescription("1 while the snapshot is being delivered, 0 once it is done."))
	errs = append(errs, err)
	in.snapProgress, err = m.Float64ObservableGauge("changestream.snapshot.progress", metric.WithUnit("1"),
		metric.WithDescription("Fraction of the snapshot delivered, from 0 to 1."))
	errs = append(errs, err)
	in.leaseActive, err = m.Int64ObservableGauge("changestream.lease.active", metric.WithUnit("1"),
		metric.WithDescription("1 while this instance holds the stream's lease, 0 once it lost it."))
	errs = append(errs, err)
	in.leaseEpoch, err = m.Int64ObservableGauge("changestream.lease.epoch", metric.WithUnit("{epoch}"),
		metric.WithDescription("Epoch of the stream's lease: how many times the stream changed hands."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &in, nil
}

func (in *instruments) all() []metric.Observable {
	return []metric.Observable{in.delivered, in.committed, in.resumes, in.rewatches, in.saves, in.failures,
		in.batches, in.checkpointAge, in.lag, in.committedLag, in.batchSize, in.alive, in.caughtUp, in.inFlight,
		in.snapCopied, in.snapEstimated, in.snapRunning, in.snapProgress, in.leaseActive, in.leaseEpoch}
}

// Register reports the figures of s through mp until the returned
// Registration's Unregister: the instruments of the package doc, observed
// from s.Stats() each time the SDK collects. A nil mp means OpenTelemetry's
// global MeterProvider (otel.GetMeterProvider). It returns an error for
// options without a Name and when the meter refuses an instrument.
func Register(mp metric.MeterProvider, s Source, opts *Options) (*Registration, error) {
	if s == nil {
		return nil, errors.New("otelstream: Register needs a stream, not nil")
	}
	if opts == nil || opts.Name == "" {
		return nil, errors.New("otelstream: Options.Name is required: it tells the streams of a program apart")
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(ScopeName)
	in, err := newInstruments(meter)
	if err != nil {
		return nil, err
	}
	attrs := []attribute.KeyValue{
		attribute.String("changestream.stream", opts.Name),
		attribute.String("db.system.name", "mongodb"),
	}
	if opts.Database != "" {
		attrs = append(attrs, attribute.String("db.namespace", opts.Database))
	}
	if opts.Collection != "" {
		attrs = append(attrs, attribute.String("db.collection.name", opts.Collection))
	}
	attrs = append(attrs, opts.Attributes...)
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))

	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.Stats()
		o.ObserveInt64(in.delivered, st.Events, set)
		o.ObserveInt64(in.committed, st.Committed, set)
		o.ObserveInt64(in.resumes, st.Resumes, set)
		o.ObserveInt64(in.rewatches, st.Rewatches, set)
		o.ObserveInt64(in.saves, st.CheckpointSaves, set)
		o.ObserveInt64(in.failures, st.CheckpointFailures, set)
		o.ObserveInt64(in.batches, st.Batches, set)
		if st.Batches > 0 {
			o.ObserveInt64(in.batchSize, int64(st.LastBatch), set)
		}
		if at := st.Checkpoint.UpdatedAt; !at.IsZero() {
			o.ObserveFloat64(in.checkpointAge, max(time.Since(at), 0).Seconds(), set)
		}
		if !st.ClusterTime.IsZero() {
			o.ObserveFloat64(in.lag, st.Lag.Seconds(), set)
		}
		if !st.CommittedClusterTime.IsZero() {
			o.ObserveFloat64(in.committedLag, st.CommittedLag.Seconds(), set)
		}
		caughtUp := int64(0)
		if st.CaughtUp {
			caughtUp = 1
		}
		o.ObserveInt64(in.caughtUp, caughtUp, set)
		o.ObserveInt64(in.inFlight, int64(st.InFlight), set)
		alive := int64(0)
		if s.Alive() {
			alive = 1
		}
		o.ObserveInt64(in.alive, alive, set)
		if snap := st.Snapshot; snap != (stream.SnapshotStats{}) {
			o.ObserveInt64(in.snapCopied, snap.Copied, set)
			o.ObserveInt64(in.snapEstimated, snap.Estimated, set)
			o.ObserveFloat64(in.snapProgress, snap.Fraction(), set)
			if snap.Running && snap.Namespace != "" {
				// The collection being read is an attribute of this
				// gauge only: the other snapshot figures span every
				// collection of the scan.
				ns := metric.WithAttributeSet(attribute.NewSet(append(attrs[:len(attrs):len(attrs)],
					attribute.String("changestream.snapshot.namespace", snap.Namespace))...))
				o.ObserveInt64(in.snapRunning, 1, ns)
			} else {
				running := int64(0)
				if snap.Running {
					running = 1
				}
				o.ObserveInt64(in.snapRunning, running, set)
			}
		}
		if st.Role != "" {
			active := int64(0)
			if st.Role == "active" {
				active = 1
			}
			o.ObserveInt64(in.leaseActive, active, set)
			o.ObserveInt64(in.leaseEpoch, st.LeaseEpoch, set)
		}
		return nil
	}, in.all()...)
	if err != nil {
		return nil, err
	}
	return &Registration{reg: reg}, nil
}
