package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// NoCheckpointPolicy is what Watch does when Options.Store holds no
// checkpoint for the stream: see Options.NoCheckpoint.
type NoCheckpointPolicy int

const (
	// StartNow starts the change stream from now (or from the driver's
	// resume options passed to Watch): documents that existed before are
	// never delivered. It is the zero value.
	StartNow NoCheckpointPolicy = iota

	// StartWithSnapshot delivers every existing document first, as an
	// event with OperationType OpSnapshot, then goes on with the change
	// stream from a point fixed before the scan began; see
	// Options.NoCheckpoint.
	StartWithSnapshot

	// FailWithoutCheckpoint makes Watch fail with an error matching
	// ErrNoCheckpoint: for a consumer that must never start fresh
	// silently, say because its checkpoint collection was dropped.
	FailWithoutCheckpoint
)

// String returns the constant's name.
func (p NoCheckpointPolicy) String() string {
	switch p {
	case StartNow:
		return "StartNow"
	case StartWithSnapshot:
		return "StartWithSnapshot"
	case FailWithoutCheckpoint:
		return "FailWithoutCheckpoint"
	}
	return fmt.Sprintf("NoCheckpointPolicy(%d)", int(p))
}

// OpSnapshot is the OperationType of the events of a snapshot (see
// Options.NoCheckpoint): a document that existed when the stream started,
// read by the scan, not a change. Such an event has NS, DocumentKey
// ({_id: ...}), FullDocument (the document as the scan read it) and
// ClusterTime (the stream's fixed start point) set; its ID names the
// document and is not a resume token.
const OpSnapshot OperationType = "snapshot"

// DefaultSnapshotBatchSize is the batch size of the snapshot's find
// commands when Options.SnapshotBatchSize is zero.
const DefaultSnapshotBatchSize = 1000

// SnapshotStats is the progress of a stream's snapshot, in Stats.
type SnapshotStats struct {
	// Running is true from Watch until the last document of the scan was
	// delivered; after that the stream delivers changes.
	Running bool

	// Copied counts the documents delivered by the scan, those of earlier
	// runs of a resumed snapshot included.
	Copied int64

	// Estimated is the sum of the collections' estimatedDocumentCount when
	// the scan began (or resumed): an estimate of Copied at the end.
	Estimated int64

	// Namespace is "db.collection" of the collection being read.
	Namespace string
}

// Fraction returns Copied / Estimated, from 0 to 1 (1 when the snapshot is
// done or Estimated is zero and nothing is left).
func (s SnapshotStats) Fraction() float64 {
	switch {
	case !s.Running:
		return 1
	case s.Estimated <= 0:
		return 0
	case s.Copied >= s.Estimated:
		return 1
	}
	return float64(s.Copied) / float64(s.Estimated)
}

// errSnapshotTarget explains why a snapshot needs a driver target.
var errSnapshotTarget = errors.New("changestream: a snapshot needs a *mongo.Client, *mongo.Database or *mongo.Collection to read from")

// snapshotNS is a collection the snapshot reads.
type snapshotNS struct {
	db, coll string
	name     string // db.coll
	handle   *mongo.Collection
}

// snapshotter is a snapshot under way: the collections still to read, in
// (db, coll) order, and the open find cursor of the current one. Only the
// goroutine that holds the stream's sem touches it.
type snapshotter struct {
	fixed   Token // where the change stream goes on after the scan
	fixedCT bson.Timestamp
	batch   int32
	colls   []snapshotNS
	after   bson.RawValue // resume colls[0] after this _id; zero: from its start
	cur     *mongo.Cursor // of colls[0], nil until opened
	ahead   chan bool     // the result of a cur.Next running in the background; nil when none
	stats   SnapshotStats
}

// newSnapshotter lists the collections target holds and estimates their
// documents. from, when not nil, is the progress of an earlier run.
// Collections the first $match of pipeline rules out are left out.
func newSnapshotter(ctx context.Context, target Watcher, pipeline any, fixed Token, from *SnapshotCheckpoint, batch int) (*snapshotter, error) {
	all, err := snapshotCollections(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("changestream: snapshot: listing the collections: %w", err)
	}
	filter := namespaceFilter(pipeline)
	var colls []snapshotNS
	for _, c := range all {
		if filter.allows(c.db, c.coll) {
			colls = append(colls, c)
		}
	}
	sn := &snapshotter{fixed: fixed, fixedCT: tokenTime(fixed), batch: int32(batch), colls: colls}
	sn.stats.Running = true
	for _, c := range colls {
		n, err := c.handle.EstimatedDocumentCount(ctx)
		if err != nil {
			return nil, fmt.Errorf("changestream: snapshot: estimatedDocumentCount of %s.%s: %w", c.db, c.coll, err)
		}
		sn.stats.Estimated += n
	}
	if from != nil {
		// The collections before from's are done; from's goes on after
		// its last _id.
		i, found := slices.BinarySearchFunc(sn.colls, from, func(c snapshotNS, f *SnapshotCheckpoint) int {
			return cmp.Or(strings.Compare(c.db, f.DB), strings.Compare(c.coll, f.Collection))
		})
		sn.colls = sn.colls[i:]
		if found {
			sn.after = from.LastID
		}
		sn.stats.Copied = from.Copied
	}
	if len(sn.colls) > 0 {
		sn.stats.Namespace = sn.colls[0].name
	}
	return sn, nil
}

// snapshotCollections returns the collections a stream on target sees,
// sorted by (db, coll): views, system collections and the admin, config and
// local databases are left out, as change streams leave them out.
func snapshotCollections(ctx context.Context, target Watcher) ([]snapshotNS, error) {
	var dbs []*mongo.Database
	switch t := target.(type) {
	case *mongo.Collection:
		return []snapshotNS{{db: t.Database().Name(), coll: t.Name(), name: t.Database().Name() + "." + t.Name(), handle: t}}, nil
	case *mongo.Database:
		dbs = []*mongo.Database{t}
	case *mongo.Client:
		names, err := t.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if n != "admin" && n != "config" && n != "local" {
				dbs = append(dbs, t.Database(n))
			}
		}
	default:
		return nil, errSnapshotTarget
	}
	var out []snapshotNS
	for _, db := range dbs {
		specs, err := db.ListCollectionSpecifications(ctx, bson.D{})
		if err != nil {
			return nil, err
		}
		for _, sp := range specs {
			if sp.Type != "" && sp.Type != "collection" || strings.HasPrefix(sp.Name, "system.") {
				continue
			}
			out = append(out, snapshotNS{db: db.Name(), coll: sp.Name, name: db.Name() + "." + sp.Name, handle: db.Collection(sp.Name)})
		}
	}
	slices.SortFunc(out, func(a, b snapshotNS) int {
		return cmp.Or(strings.Compare(a.db, b.db), strings.Compare(a.coll, b.coll))
	})
	return out, nil
}

// next returns the next document of the scan and its collection; ok is
// false when the scan is done. A failed find or getMore leaves the
// snapshotter ready to go on after the last document returned.
func (sn *snapshotter) next(ctx context.Context) (doc bson.Raw, ns snapshotNS, ok bool, err error) {
	for len(sn.colls) > 0 {
		c := sn.colls[0]
		if sn.cur == nil {
			filter := bson.D{}
			if sn.after.Type != 0 {
				filter = afterID(sn.after)
			}
			opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(sn.batch)
			if sn.cur, err = c.handle.Find(ctx, filter, opts); err != nil {
				sn.cur = nil
				return nil, c, false, fmt.Errorf("changestream: snapshot of %s.%s: %w", c.db, c.coll, err)
			}
		}
		var more bool
		if sn.ahead != nil {
			more = <-sn.ahead
			sn.ahead = nil
		} else {
			more = sn.cur.Next(ctx)
		}
		if more {
			doc = sn.cur.Current
			id, err := doc.LookupErr("_id")
			if err != nil {
				return nil, c, false, fmt.Errorf("changestream: snapshot of %s.%s: a document without an _id", c.db, c.coll)
			}
			sn.after = id
			sn.stats.Copied++
			return doc, c, true, nil
		}
		err := sn.cur.Err()
		sn.cur.Close(context.WithoutCancel(ctx))
		sn.cur = nil
		if err != nil {
			return nil, c, false, fmt.Errorf("changestream: snapshot of %s.%s: %w", c.db, c.coll, err)
		}
		sn.colls, sn.after = sn.colls[1:], bson.RawValue{}
		if len(sn.colls) > 0 {
			sn.stats.Namespace = sn.colls[0].name
		}
	}
	sn.stats.Running = false
	return nil, snapshotNS{}, false, nil
}

// afterID is the filter of the documents whose _id sorts after last in
// the scan's order (sort by _id, MongoDB's order of BSON types): $gt alone
// only matches _ids of last's own type class, so the _ids of every class
// sorted after it are added by $type. Without them a scan that goes on
// after a restart or a failed read would skip those documents.
func afterID(last bson.RawValue) bson.D {
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: last}}}}
	class := typeClass(last.Type)
	var later bson.A
	for _, t := range bsonTypesInOrder {
		if typeClass(t) > class {
			later = append(later, typeNumber(t))
		}
	}
	if len(later) == 0 {
		return filter
	}
	return bson.D{{Key: "$or", Value: bson.A{
		filter,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: later}}}},
	}}}
}

// bsonTypesInOrder lists every BSON type a value can have.
var bsonTypesInOrder = []bson.Type{
	bson.TypeMinKey, bson.TypeUndefined, bson.TypeNull,
	bson.TypeDouble, bson.TypeInt32, bson.TypeInt64, bson.TypeDecimal128,
	bson.TypeSymbol, bson.TypeString, bson.TypeEmbeddedDocument, bson.TypeArray,
	bson.TypeBinary, bson.TypeObjectID, bson.TypeBoolean, bson.TypeDateTime,
	bson.TypeTimestamp, bson.TypeRegex, bson.TypeDBPointer, bson.TypeJavaScript,
	bson.TypeCodeWithScope, bson.TypeMaxKey,
}

// typeClass is MongoDB's canonical order of a BSON type: values of types
// of one class compare by value, the classes by this number.
func typeClass(t bson.Type) int {
	switch t {
	case bson.TypeMinKey:
		return -1
	case bson.TypeUndefined:
		return 0
	case bson.TypeNull:
		return 5
	case bson.TypeDouble, bson.TypeInt32, bson.TypeInt64, bson.TypeDecimal128:
		return 10
	case bson.TypeString, bson.TypeSymbol:
		return 15
	case bson.TypeEmbeddedDocument:
		return 20
	case bson.TypeArray:
		return 25
	case bson.TypeBinary:
		return 30
	case bson.TypeObjectID:
		return 35
	case bson.TypeBoolean:
		return 40
	case bson.TypeDateTime:
		return 45
	case bson.TypeTimestamp:
		return 47
	case bson.TypeRegex:
		return 50
	case bson.TypeDBPointer:
		return 55
	case bson.TypeJavaScript:
		return 60
	case bson.TypeCodeWithScope:
		return 65
	default: // MaxKey
		return 127
	}
}

// typeNumber is t as $type takes it (MinKey is -1).
func typeNumber(t bson.Type) int32 {
	if t == bson.TypeMinKey {
		return -1
	}
	return int32(t)
}

// prefetch starts the getMore of the next batch in the background once the
// batch in hand is consumed, so that the server prepares it while the
// consumer handles the last document: next takes its result. The caller
// must be done with cur.Current. ctx is the stream's own context.
func (sn *snapshotter) prefetch(ctx context.Context) {
	cur := sn.cur
	if cur == nil || sn.ahead != nil || cur.RemainingBatchLength() > 0 || cur.ID() == 0 {
		return
	}
	ch := make(chan bool, 1)
	sn.ahead = ch
	go func() { ch <- cur.Next(ctx) }()
}

// close kills the find cursor, if one is open, after the getMore running
// in the background (the caller cancelled its context) returned.
func (sn *snapshotter) close(ctx context.Context) {
	if sn.ahead != nil {
		<-sn.ahead
		sn.ahead = nil
	}
	if sn.cur != nil {
		sn.cur.Close(ctx)
		sn.cur = nil
	}
}

// event builds the snapshot event of doc, a document of ns, in one
// allocation: the event, its _id (a Token naming the document) and the
// document's _id (inside the event's documentKey).
func (sn *snapshotter) event(doc bson.Raw, ns snapshotNS) (raw bson.Raw, id Token, docID bson.RawValue) {
	idv := doc.Lookup("_id")
	v := bsoncore.Value{Type: bsoncore.Type(idv.Type), Data: idv.Value}
	nsName := ns.name
	// Sizes: a document is 4 bytes of length, its elements and a 0; an
	// element is a type byte, its key and a 0, and its value; a string is
	// 4 bytes of length, its bytes and a 0.
	elem := func(key string, n int) int { return 1 + len(key) + 1 + n }
	str := func(s string) int { return 4 + len(s) + 1 }
	idDoc := 5 + elem("snapshot", str(nsName)) + elem("_id", len(v.Data))
	nsDoc := 5 + elem("db", str(ns.db)) + elem("coll", str(ns.coll))
	keyDoc := 5 + elem("_id", len(v.Data))
	size := 5 + elem("_id", idDoc) + elem("operationType", str(string(OpSnapshot))) + elem("clusterTime", 8) +
		elem("ns", nsDoc) + elem("documentKey", keyDoc) + elem("fullDocument", len(doc))
	b := make([]byte, 0, size)
	var top, sub int32
	top, b = bsoncore.AppendDocumentStart(b)
	sub, b = bsoncore.AppendDocumentElementStart(b, "_id")
	idStart := int(sub)
	b = bsoncore.AppendStringElement(b, "snapshot", nsName)
	b = bsoncore.AppendValueElement(b, "_id", v)
	b, _ = bsoncore.AppendDocumentEnd(b, sub)
	idEnd := len(b)
	b = bsoncore.AppendStringElement(b, "operationType", string(OpSnapshot))
	b = bsoncore.AppendTimestampElement(b, "clusterTime", sn.fixedCT.T, sn.fixedCT.I)
	sub, b = bsoncore.AppendDocumentElementStart(b, "ns")
	b = bsoncore.AppendStringElement(b, "db", ns.db)
	b = bsoncore.AppendStringElement(b, "coll", ns.coll)
	b, _ = bsoncore.AppendDocumentEnd(b, sub)
	sub, b = bsoncore.AppendDocumentElementStart(b, "documentKey")
	b = bsoncore.AppendValueElement(b, "_id", v)
	keyIDEnd := len(b)
	b, _ = bsoncore.AppendDocumentEnd(b, sub)
	b = bsoncore.AppendDocumentElement(b, "fullDocument", doc)
	b, _ = bsoncore.AppendDocumentEnd(b, top)
	raw = bson.Raw(b)
	docID = bson.RawValue{Type: idv.Type, Value: b[keyIDEnd-len(v.Data) : keyIDEnd : keyIDEnd]}
	return raw, tokenOf(raw[idStart:idEnd:idEnd]), docID
}

// deliverSnapshot delivers the next document of the snapshot under way, for
// deliverHeld. handled is false once the scan is done: the caller goes on
// with the change stream.
func (s *Stream[T]) deliverSnapshot(ctx context.Context) (d delivery[T], ok, handled bool, err error) {
	sn := s.snap
	if err := ctx.Err(); err != nil {
		return d, false, true, err
	}
	// The find cursor's calls use the stream's own context, which only
	// Close cancels: a caller's deadline (Batches' wait) that ended in a
	// getMore would cost the cursor, and a new find.
	doc, ns, ok, err := sn.next(s.ictx)
	if err != nil && s.ictx.Err() == nil && !s.opts.DisableRewatch && transient(err) {
		doc, ns, ok, err = s.retrySnapshot(ctx, err)
	}
	s.mu.Lock()
	s.stats.Snapshot = sn.stats
	s.mu.Unlock()
	if err != nil {
		if s.ictx.Err() != nil {
			return d, false, true, ErrClosed
		}
		s.mu.Lock()
		s.term = err
		s.mu.Unlock()
		return d, false, true, err
	}
	if !ok {
		s.snap = nil
		s.log.Info("changestream: snapshot done; going on with the change stream", "documents", sn.stats.Copied)
		return d, false, false, nil
	}
	raw, id, docID := sn.event(doc, ns)
	if !s.opts.DisablePrefetch {
		sn.prefetch(s.ictx)
	}
	rec := &SnapshotCheckpoint{
		Version: SnapshotCheckpointVersion, DB: ns.db, Collection: ns.coll,
		LastID: docID, Copied: sn.stats.Copied, // never modified: raw is the stream's, never reused
	}
	s.pos.deliver(id, mark{tok: sn.fixed, ct: sn.fixedCT, snap: rec}, false)
	val, derr := s.decode(raw, id)
	if derr == nil {
		s.mu.Lock()
		s.stats.Events++
		s.mu.Unlock()
	}
	d = delivery[T]{val: val, raw: raw, id: id, after: sn.fixed}
	return d, derr == nil, true, derr
}

// retrySnapshot goes on with the scan after a failure a new find may mend
// (the network, a failover, a lost cursor): a find after the last _id
// delivered, with the backoff, attempts and time limit of a new watch
// (Options.RewatchDelay, RewatchAttempts, RewatchTimeout).
func (s *Stream[T]) retrySnapshot(ctx context.Context, err error) (doc bson.Raw, ns snapshotNS, ok bool, _ error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		s.log.Warn("changestream: the snapshot's read failed; reading again after the last document delivered", "attempt", attempt, "err", err)
		if (s.opts.RewatchAttempts > 0 && attempt > s.opts.RewatchAttempts) ||
			time.Since(start)+s.backoff.delay(attempt) > s.opts.RewatchTimeout {
			return nil, ns, false, fmt.Errorf("changestream: gave up reading the snapshot again after %d attempts: %w", attempt-1, err)
		}
		if d := s.backoff.delay(attempt); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ns, false, ctx.Err()
			case <-s.done:
				t.Stop()
				return nil, ns, false, ErrClosed
			}
		}
		doc, ns, ok, err = s.snap.next(s.ictx)
		if err == nil || s.ictx.Err() != nil || !transient(err) {
			return doc, ns, ok, err
		}
	}
}

// startSnapshot begins (or, with from, resumes) the snapshot of a stream
// whose driver stream was just opened at fixed.
func (s *Stream[T]) startSnapshot(ctx context.Context, fixed Token, from *SnapshotCheckpoint) error {
	if fixed.IsZero() {
		return errors.New("changestream: a snapshot needs the server's postBatchResumeToken to fix its start point, and the server sent none (MongoDB 4.0.7 or later sends one)")
	}
	sn, err := newSnapshotter(ctx, s.target, s.pipeline, fixed, from, s.opts.SnapshotBatchSize)
	if err != nil {
		return err
	}
	s.snap = sn
	s.mu.Lock()
	s.stats.Snapshot = sn.stats
	s.mu.Unlock()
	s.log.Info("changestream: snapshot started", "resumed", from != nil, "collections", len(sn.colls), "estimated", sn.stats.Estimated, "fixedPoint", fixed.String())
	return nil
}

// errNoCheckpointPolicy is Watch's error under FailWithoutCheckpoint.
func errNoCheckpointPolicy(name string) error {
	return fmt.Errorf("changestream: stream %q has no checkpoint in its store, and Options.NoCheckpoint is FailWithoutCheckpoint: %w", name, ErrNoCheckpoint)
}
