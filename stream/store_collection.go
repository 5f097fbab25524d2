package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// CollectionStore is a TokenStore that keeps checkpoints in a MongoDB
// collection, one document per stream:
//
//	{_id: "<stream name>", token: {_data: "8264..."}, clusterTime: Timestamp(...),
//	 wallTime: ISODate(...) or null, updatedAt: ISODate(...)}
//
// Save upserts the stream's document (a replace by _id) with majority write
// concern unless CollectionStoreOptions says otherwise; Load reads it by _id
// from the primary with majority read concern, so a checkpoint a Save
// reported as written survives a failover. Dates keep millisecond precision,
// as BSON dates do. Create one with NewCollectionStore; it is safe for
// concurrent use.
//
// A stream with a CollectionStore never watches the store's collection: a
// database or deployment stream that includes it does not see its events,
// and Watch refuses a stream on it (see Options.Store).
type CollectionStore struct {
	coll   *mongo.Collection
	source string
}

// CollectionStoreOptions configures a CollectionStore. A nil
// *CollectionStoreOptions means all defaults.
type CollectionStoreOptions struct {
	// WriteConcern is the write concern of Save. The zero value (nil) is
	// majority. An unacknowledged write concern is rejected: a checkpoint
	// that may be lost silently is no checkpoint.
	WriteConcern *writeconcern.WriteConcern
}

// NewCollectionStore returns a CollectionStore over coll, which it uses
// through a clone with the write concern of opts, majority read concern and
// the primary read preference. It fails when coll is nil or opts asks for an
// unacknowledged write concern.
func NewCollectionStore(coll *mongo.Collection, opts *CollectionStoreOptions) (*CollectionStore, error) {
	if coll == nil {
		return nil, errors.New("changestream: CollectionStore needs a collection")
	}
	wc := writeconcern.Majority()
	if opts != nil && opts.WriteConcern != nil {
		wc = opts.WriteConcern
	}
	if !wc.Acknowledged() {
		return nil, errors.New("changestream: CollectionStore write concern must be acknowledged")
	}
	c := coll.Clone(options.Collection().
		SetWriteConcern(wc).
		SetReadConcern(readconcern.Majority()).
		SetReadPreference(readpref.Primary()))
	return &CollectionStore{
		coll:   c,
		source: "collection " + coll.Database().Name() + "." + coll.Name(),
	}, nil
}

// Collection returns the collection the store writes to.
func (c *CollectionStore) Collection() *mongo.Collection { return c.coll }

// Load reads the checkpoint document of stream name. A missing document
// gives ErrNoCheckpoint; a document whose token or times are malformed gives
// a *CorruptCheckpointError naming the collection and the stream. Errors of
// the server or the network are returned as the driver reports them.
func (c *CollectionStore) Load(ctx context.Context, name string) (Checkpoint, error) {
	if err := c.check(ctx, name); err != nil {
		return Checkpoint{}, err
	}
	raw, err := c.coll.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("changestream: load checkpoint of stream %q from %s: %w", name, c.source, err)
	}
	cp, err := decodeCheckpointDoc(raw)
	if err != nil {
		return Checkpoint{}, &CorruptCheckpointError{Stream: name, Source: c.source, Err: err}
	}
	return cp, nil
}

// Save upserts the checkpoint document of stream name.
func (c *CollectionStore) Save(ctx context.Context, name string, cp Checkpoint) error {
	if err := c.check(ctx, name); err != nil {
		return err
	}
	cp, err := checkSave(ctx, name, cp)
	if err != nil {
		return err
	}
	var wall any // null when the wall time is unknown
	if !cp.WallTime.IsZero() {
		wall = bson.NewDateTimeFromTime(cp.WallTime)
	}
	doc := bson.D{
		{Key: "_id", Value: name},
		{Key: "token", Value: cp.Token},
		{Key: "clusterTime", Value: cp.ClusterTime},
		{Key: "wallTime", Value: wall},
		{Key: "updatedAt", Value: bson.NewDateTimeFromTime(cp.UpdatedAt)},
	}
	if cp.Snapshot != nil {
		doc = append(doc, bson.E{Key: "snapshot", Value: cp.Snapshot.snapshotDoc()})
	}
	_, err = c.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: name}}, doc, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("changestream: save checkpoint of stream %q to %s: %w", name, c.source, err)
	}
	return nil
}

func (c *CollectionStore) check(ctx context.Context, name string) error {
	if c == nil || c.coll == nil {
		return errors.New("changestream: CollectionStore used without NewCollectionStore")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkStreamName(name)
}

// decodeCheckpointDoc reads a checkpoint document. Every field is checked:
// a missing or ill-typed token, cluster time or updatedAt is an error.
func decodeCheckpointDoc(raw bson.Raw) (Checkpoint, error) {
	var cp Checkpoint
	tv, err := raw.LookupErr("token")
	if err != nil {
		return Checkpoint{}, errors.New("the token field is missing")
	}
	doc, ok := tv.DocumentOK()
	if !ok {
		return Checkpoint{}, fmt.Errorf("the token is BSON type %s, not a document", tv.Type)
	}
	if cp.Token, err = TokenFromRaw(doc); err != nil {
		return Checkpoint{}, err
	}
	if cp.Token.IsZero() {
		return Checkpoint{}, errors.New("the token is empty")
	}

	ctv, err := raw.LookupErr("clusterTime")
	if err != nil {
		return Checkpoint{}, errors.New("the clusterTime field is missing")
	}
	t, i, ok := ctv.TimestampOK()
	if !ok {
		return Checkpoint{}, fmt.Errorf("clusterTime is BSON type %s, not a timestamp", ctv.Type)
	}
	cp.ClusterTime = bson.Timestamp{T: t, I: i}

	if wv, err := raw.LookupErr("wallTime"); err == nil && wv.Type != bson.TypeNull {
		ms, ok := wv.DateTimeOK()
		if !ok {
			return Checkpoint{}, fmt.Errorf("wallTime is BSON type %s, not a date", wv.Type)
		}
		cp.WallTime = time.UnixMilli(ms).UTC()
	}

	uv, err := raw.LookupErr("updatedAt")
	if err != nil {
		return Checkpoint{}, errors.New("the updatedAt field is missing")
	}
	ms, ok := uv.DateTimeOK()
	if !ok {
		return Checkpoint{}, fmt.Errorf("updatedAt is BSON type %s, not a date", uv.Type)
	}
	cp.UpdatedAt = time.UnixMilli(ms).UTC()

	if sv, err := raw.LookupErr("snapshot"); err == nil && sv.Type != bson.TypeNull {
		sd, ok := sv.DocumentOK()
		if !ok {
			return Checkpoint{}, fmt.Errorf("snapshot is BSON type %s, not a document", sv.Type)
		}
		if cp.Snapshot, err = decodeSnapshotDoc(sd); err != nil {
			return Checkpoint{}, err
		}
	}
	return cp, nil
}
