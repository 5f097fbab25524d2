// Package otelstream reports the figures of a stream.Stream as
// OpenTelemetry metrics, and tells whether a stream is healthy enough to
// serve, for a readiness probe.
//
// It uses only OpenTelemetry's metric API (go.opentelemetry.io/otel/metric):
// the program picks the SDK and the exporter (OTLP, Prometheus, ...) and
// passes its MeterProvider. The stream package itself does not depend on
// OpenTelemetry; this package reads Stream.Stats and Stream.Alive when the
// SDK collects, so it adds no work to the stream's path:
//
//	s, err := stream.Watch[stream.Event[Order]](ctx, orders, nil, &stream.Options{Name: "orders", Store: store})
//	...
//	reg, err := otelstream.Register(provider, s, &otelstream.Options{Name: "orders", Database: "shop", Collection: "orders"})
//	...
//	defer reg.Unregister()
//	http.Handle("/ready", &otelstream.HealthCheck{Stream: s, MaxLag: time.Minute})
//
// # Instruments
//
// Every measurement carries the attributes changestream.stream (Options.Name),
// db.system.name ("mongodb"), db.namespace (the database, when
// Options.Database is set), db.collection.name (when Options.Collection is
// set) and Options.Attributes. The meter is named
// "github.com/go-changestream/changestream/otelstream". Counters are
// cumulative, observed from Stats, so they start at the stream's own counts.
//
//	changestream.events.delivered    counter  {event}     Stats.Events: events Next, TryNext, All and Batches delivered
//	changestream.events.committed    counter  {event}     Stats.Committed: events whose position was committed
//	changestream.driver.resumes      counter  {resume}    Stats.Resumes: resumes the driver made by itself
//	changestream.rewatches           counter  {watch}     Stats.Rewatches: new watches the stream made after a failure or an invalidate
//	changestream.checkpoint.saves    counter  {save}      Stats.CheckpointSaves: checkpoints saved
//	changestream.checkpoint.failures counter  {save}      Stats.CheckpointFailures: saves that failed
//	changestream.checkpoint.age      gauge    s           time since the last checkpoint was saved; not reported before one
//	changestream.lag                 gauge    s           Stats.Lag: how far the delivered position is behind the newest cluster time the server reported (0 when caught up); not reported while the position has no cluster time
//	changestream.committed.lag       gauge    s           Stats.CommittedLag: the same for the committed position, where a restart would resume; not reported before a commit
//	changestream.caught_up           gauge    1           Stats.CaughtUp: 1 when the server had nothing after the last event delivered
//	changestream.events.in_flight    updown   {event}     Stats.InFlight: events delivered and not committed yet
//	changestream.batches             counter  {batch}     Stats.Batches: the server's batches that brought documents
//	changestream.batch.size          gauge    {document}  Stats.LastBatch: documents in the latest of those batches
//	changestream.alive               gauge    1           1 while the stream may deliver more events, 0 once it ended (Close, an error)
//	changestream.snapshot.running    gauge    1           Stats.Snapshot.Running: 1 while the snapshot is being delivered, 0 once it is done; while it runs it also carries changestream.snapshot.namespace, the "db.collection" being read
//	changestream.snapshot.copied     counter  {document}  Stats.Snapshot.Copied: documents the snapshot delivered, those of earlier runs of a resumed snapshot included
//	changestream.snapshot.estimated  gauge    {document}  Stats.Snapshot.Estimated: the collections' estimatedDocumentCount when the scan began or resumed
//	changestream.snapshot.progress   gauge    1           Stats.Snapshot.Fraction(): copied / estimated, from 0 to 1 (1 once done)
//	changestream.lease.active        gauge    1           Stats.Role: 1 while this instance holds the lease (Options.LeaseTTL), 0 once it lost it
//	changestream.lease.epoch         gauge    {epoch}     Stats.LeaseEpoch: how many times the stream name changed hands, this instance's turn included
//
// The snapshot instruments are reported only for a stream that took a
// snapshot (Options.NoCheckpoint StartWithSnapshot, or
// SnapshotOnHistoryLost), from Watch on; once done, not for one that found
// no collection to scan (Stats.Snapshot is then the zero value). The lease
// instruments are reported only for a stream with a lease. A standby instance is still waiting in
// stream.Watch and has no stream to register, so it reports nothing:
// the sum of changestream.lease.active over a stream's instances is 1
// while one consumes and 0 during a takeover, and a step in
// changestream.lease.epoch marks each takeover.
//
// A stream that keeps up sees batches of one document and is caught up
// between them; a growing changestream.batch.size and changestream.lag
// mean it falls behind. changestream.committed.lag above
// changestream.lag, or a growing changestream.events.in_flight, means
// the consumer delivers events faster than it commits them. The
// rate of changestream.checkpoint.failures against
// changestream.checkpoint.saves shows a store in trouble before
// Options.CheckpointFailures makes the stream report it.
//
// # Health
//
// HealthCheck answers whether a stream can serve: it is alive, its last
// checkpoint save did not fail, and it is caught up or its lag is within a
// budget. Check
// returns the reasons it cannot; as an http.Handler it answers 200 or 503
// with them, for a readiness probe.
package otelstream
