package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultPartitions is the number of partitions of a group when
// GroupOptions.Partitions is zero.
const DefaultPartitions = 16

// DefaultGroupLeaseTTL is the lease TTL of a group's members and
// partitions when Options.LeaseTTL is zero.
const DefaultGroupLeaseTTL = 10 * time.Second

// GroupOptions configures a Group. A nil *GroupOptions means all defaults.
type GroupOptions struct {
	// Partitions is how many partitions the stream is split into. It is
	// fixed when the first member of the group starts and recorded in the
	// store: a member started with another number is refused. The zero
	// value means DefaultPartitions; at most MaxPartitions.
	Partitions int
}

// Partition is one partition of a group's stream, as Group.Run hands it to
// its function.
type Partition struct {
	Index int    // 0 ≤ Index < Count
	Count int    // the group's number of partitions
	Name  string // the stream name of the partition's checkpoint and lease
}

// GroupStats is a snapshot of a member of a group.
type GroupStats struct {
	Instance string // this member's name in the store (Options.Instance)
	// Members are the members this one counts as alive, itself included,
	// in sorted order.
	Members []string
	// Assigned are the partitions the current membership deals to this
	// member; Owned those whose lease it holds and whose stream is open.
	// They differ during a handover: a partition is owned only once its
	// previous owner released it or its lease expired.
	Assigned, Owned []int
	// Rebalances counts the changes of Assigned after the first.
	Rebalances int64
	// Acquired and Released count the partitions this member took and
	// gave back (or lost).
	Acquired, Released int64
}

// ErrGroupMismatch is matched by the error of a member started with
// another number of partitions than its group's.
var ErrGroupMismatch = errors.New("changestream: the group's partitions differ")

// Group is one member of a consumer group: several instances of a service
// sharing one stream, split into partitions by a hash of each event's
// documentKey, each partition consumed by one member at a time. Create one
// with NewGroup and start it with Run.
//
// Members find each other through the CollectionStore (Options.Store):
// each writes a member document there and renews it every LeaseTTL/3; a
// member counts another as gone once it saw that document unrenewed for a
// whole LeaseTTL, or at once when the other left (Run returned). Every
// member deals the partitions out the same way over the members it sees
// (each gets ⌊P/M⌋ or ⌈P/M⌉), and opens, for each of its partitions, a
// Stream of its own: a stream name of its own (Partition.Name) with its
// own checkpoint and lease (Options.LeaseTTL), and a pipeline that keeps
// the partition's events on the server ($toHashedIndexKey of
// documentKey). When members join or leave, a member stops the partitions
// that are no longer its own (their function's context is cancelled, the
// stream is closed, committing what it delivered, and the lease released),
// and takes up new ones once their lease is free: released, or expired
// after its owner died.
//
// Guarantees: every event of the stream reaches the member that owns its
// partition, at least once. The events of one document stay in one
// partition, so they are handled in stream order across handovers too: a
// partition moves only after its old owner closed it or its lease expired,
// and the lease fences every checkpoint save of an old owner. Events
// without a documentKey (DDL events, invalidate) reach every partition.
// What may come twice: after a member died, the events of its partitions
// after their last saved checkpoint; after a clean handover, none beyond
// what the function delivered but did not commit.
//
// The pipeline must keep each event's documentKey as the server wrote it.
type Group[T any] struct {
	target   Watcher
	pipeline any
	csOpts   []options.Lister[options.ChangeStreamOptions]
	opts     Options // resolved; Name is the group's, LeaseTTL set
	store    *CollectionStore
	parts    int
	log      *slog.Logger
	used     chan struct{} // holds a value until Run starts

	mu    sync.Mutex
	stats GroupStats // written by Run's goroutines under mu
}

// NewGroup returns a member of the group Options.Name over target and
// pipeline. opts needs a Store that is a *CollectionStore and a Name; its
// LeaseTTL (zero: DefaultGroupLeaseTTL) is the members' and partitions'
// TTL, Instance names this member. Every member of a group must pass the
// same target, pipeline, csOpts and Partitions: each partition's
// checkpoint records them (see Identity), and a member with a different
// pipeline is refused by the partitions' checkpoints.
//
// A group fixes its own start point: the first member records the
// position of the stream when it creates the group, and every partition
// without a checkpoint starts there. csOpts therefore may not set
// resumeAfter, startAfter or startAtOperationTime, and opts.NoCheckpoint
// may not be StartWithSnapshot nor SnapshotOnHistoryLost be set;
// FailWithoutCheckpoint makes Run refuse to create a group that does not
// exist yet.
func NewGroup[T any](target Watcher, pipeline any, opts *Options, gopts *GroupOptions,
	csOpts ...options.Lister[options.ChangeStreamOptions],
) (*Group[T], error) {
	if target == nil || isNilPointer(target) {
		return nil, errors.New("changestream: NewGroup needs a *mongo.Client, *mongo.Database or *mongo.Collection, not nil")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	store, ok := o.Store.(*CollectionStore)
	if !ok {
		return nil, fmt.Errorf("changestream: invalid Options: a group needs a *CollectionStore as Store, not %T", o.Store)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultGroupLeaseTTL
	}
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	var errs []error
	if r.NoCheckpoint == StartWithSnapshot || r.SnapshotOnHistoryLost {
		errs = append(errs, errors.New("changestream: invalid Options: a group does not take snapshots (NoCheckpoint StartWithSnapshot, SnapshotOnHistoryLost)"))
	}
	if _, resume := driverResumeOptions(csOpts); resume {
		errs = append(errs, errors.New("changestream: a group fixes its own start point: do not pass resumeAfter, startAfter or startAtOperationTime"))
	}
	parts := DefaultPartitions
	if gopts != nil && gopts.Partitions != 0 {
		parts = gopts.Partitions
	}
	if err := checkPartitions(parts); err != nil {
		errs = append(errs, err)
	} else if err := checkStreamName(partitionName(r.Name, parts-1, parts)); err != nil {
		// The longest partition name is the last one's.
		errs = append(errs, fmt.Errorf("changestream: invalid Options: the group's partition names: %w", err))
	}
	if pipeline == nil {
		pipeline = mongo.Pipeline{}
	}
	if _, err := partitionPipeline(pipeline, 0, parts); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g := &Group[T]{
		target: target, pipeline: pipeline, csOpts: slices.Clone(csOpts),
		opts: r, store: store, parts: parts,
		log:  r.Logger.With("group", r.Name, "instance", r.Instance),
		used: make(chan struct{}, 1),
	}
	g.used <- struct{}{}
	g.stats.Instance = r.Instance
	return g, nil
}

// Stats returns a snapshot of the member's state.
func (g *Group[T]) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.Members = slices.Clone(st.Members)
	st.Assigned = slices.Clone(st.Assigned)
	st.Owned = slices.Clone(st.Owned)
	return st
}

// Run joins the group and consumes this member's partitions until ctx
// ends, when it returns ctx.Err(), or until fn fails. For each partition
// it owns, Run calls fn in a goroutine of its own with a Stream of that
// partition, opened and later closed by Run; fn consumes it (with All,
// Batches or Process) and must return once its ctx ends, which happens
// when the partition moves to another member or Run stops. Run then
// closes the stream, which saves what was committed, and releases the
// partition.
//
// An error of fn, or the end of a partition's stream with an error other
// than a lost lease (such as ErrInvalidated or ErrHistoryLost), stops Run:
// it stops every partition as above and returns that error. A partition
// whose lease was lost is opened again, as a standby, while it stays
// assigned to this member. fn returning nil before its ctx ended is an
// error too: a partition is never left unconsumed.
//
// When Run returns it has closed every stream it opened and removed its
// member document, so that the other members take its partitions at
// once. Run may be called once.
func (g *Group[T]) Run(ctx context.Context, fn func(ctx context.Context, p Partition, s *Stream[T]) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if fn == nil {
		return errors.New("changestream: Group.Run needs a function, not nil")
	}
	select {
	case <-g.used:
	default:
		return errors.New("changestream: Group.Run was already called; a Group runs once")
	}
	start, err := g.join(ctx)
	if err != nil {
		return err
	}
	m := &member[T]{g: g, fn: fn, start: start, seen: map[string]seenMember{}, slots: map[int]*slot{}, stopping: map[int]*slot{}, exits: make(chan slotExit)}
	return m.run(ctx)
}

// groupDoc is the group's document in the store: _id {group: name}.
type groupDoc struct {
	Partitions int       `bson:"partitions"`
	Start      bson.Raw  `bson:"start"` // resume token where partitions without a checkpoint start
	CreatedAt  time.Time `bson:"createdAt"`
}

func (g *Group[T]) groupID() bson.D { return bson.D{{Key: "group", Value: g.opts.Name}} }

// join reads the group's document, creating it if there is none, and
// returns the group's start point.
func (g *Group[T]) join(ctx context.Context) (Token, error) {
	coll := g.store.coll
	for {
		var doc groupDoc
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: g.groupID()}}).Decode(&doc)
		if err == nil {
			if doc.Partitions != g.parts {
				return Token{}, fmt.Errorf("%w: group %q in %s has %d partitions; this member was started with %d", ErrGroupMismatch, g.opts.Name, g.store.source, doc.Partitions, g.parts)
			}
			tok, err := TokenFromRaw(doc.Start)
			if err == nil && tok.IsZero() {
				err = errors.New("no token")
			}
			if err != nil {
				return Token{}, &CorruptCheckpointError{Stream: g.opts.Name, Source: g.store.source, Err: fmt.Errorf("the group's start point: %w", err)}
			}
			return tok, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			if errors.Is(err, ctx.Err()) {
				return Token{}, err
			}
			return Token{}, fmt.Errorf("changestream: read group %q from %s: %w", g.opts.Name, g.store.source, err)
		}
		if g.opts.NoCheckpoint == FailWithoutCheckpoint {
			return Token{}, fmt.Errorf("%w: group %q has no document in %s (NoCheckpoint FailWithoutCheckpoint)", ErrNoCheckpoint, g.opts.Name, g.store.source)
		}
		start, err := g.now(ctx)
		if err != nil {
			return Token{}, err
		}
		_, err = coll.InsertOne(ctx, bson.D{
			{Key: "_id", Value: g.groupID()},
			{Key: "partitions", Value: g.parts},
			{Key: "start", Value: start.Raw()},
			{Key: "createdAt", Value: time.Now().UTC()},
		})
		if err == nil {
			g.log.Info("changestream: group created", "partitions", g.parts, "start", start.String())
			return start, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return Token{}, fmt.Errorf("changestream: create group %q in %s: %w", g.opts.Name, g.store.source, err)
		}
		// Another member created it first: read theirs.
	}
}

// now returns a resume token of the target's stream as of now: the
// postBatchResumeToken of a new change stream.
func (g *Group[T]) now(ctx context.Context) (Token, error) {
	cs, err := g.target.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		return Token{}, fmt.Errorf("changestream: group %q: open a change stream for its start point: %w", g.opts.Name, classify(err))
	}
	defer cs.Close(context.WithoutCancel(ctx))
	raw := cs.ResumeToken()
	if len(raw) == 0 {
		return Token{}, fmt.Errorf("changestream: group %q: the server sent no resume token for the group's start point", g.opts.Name)
	}
	tok, err := TokenFromRaw(raw)
	if err != nil {
		return Token{}, fmt.Errorf("changestream: group %q: the server's resume token: %w", g.opts.Name, err)
	}
	return tok, nil
}
