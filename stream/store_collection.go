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
//	 wallTime: ISODate(...) or null, updatedAt: ISODate(...),
//	 identity: {v: 1, target: "collection shop.orders", fingerprint: "v1:3f0a..."}}
//
// identity is the checkpoint's Identity, absent when it is the zero value
// (documents written before identities existed have none). With
// Options.LeaseTTL the document also holds the stream's lease,
// lease: {owner, epoch, beat, renewedAt}, and savedEpoch, the lease epoch
// of the last fenced save; a document with a lease and no token yet is no
// checkpoint (ErrNoCheckpoint).
//
// Save upserts the stream's document (an update by _id that sets the
// checkpoint's fields) with majority write concern unless
// CollectionStoreOptions says otherwise; Load reads it by _id from the
// primary with majority read concern, so a checkpoint a Save
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
	if err == nil {
		// A lease taken before the first save: no checkpoint yet.
		if _, terr := raw.LookupErr("token"); terr != nil {
			if _, lerr := raw.LookupErr(leaseField); lerr == nil {
				return Checkpoint{}, ErrNoCheckpoint
			}
		}
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

// Save upserts the checkpoint document of stream name. It sets the
// checkpoint's fields and leaves the document's lease (Options.LeaseTTL)
// as it is; a Stream holding a lease saves through a fenced update
// instead, that fails once the lease moved on.
func (c *CollectionStore) Save(ctx context.Context, name string, cp Checkpoint) error {
	return c.save(ctx, name, cp, "", 0)
}

// saveFenced saves cp only while owner holds the lease of name at epoch;
// otherwise it returns an error wrapping ErrLeaseLost and the checkpoint
// stays as it was.
func (c *CollectionStore) saveFenced(ctx context.Context, name string, cp Checkpoint, owner string, epoch int64) error {
	return c.save(ctx, name, cp, owner, epoch)
}

func (c *CollectionStore) save(ctx context.Context, name string, cp Checkpoint, owner string, epoch int64) error {
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
		{Key: "token", Value: cp.Token},
		{Key: "clusterTime", Value: cp.ClusterTime},
		{Key: "wallTime", Value: wall},
		{Key: "updatedAt", Value: bson.NewDateTimeFromTime(cp.UpdatedAt)},
	}
	if cp.Snapshot != nil {
		doc = append(doc, bson.E{Key: "snapshot", Value: cp.Snapshot.snapshotDoc()})
	}
	var unset bson.D // the optional fields this checkpoint has not
	if cp.Snapshot == nil {
		unset = append(unset, bson.E{Key: "snapshot", Value: ""})
	}
	if !cp.Identity.IsZero() {
		doc = append(doc, bson.E{Key: "identity", Value: bson.D{
			{Key: "v", Value: identityVersion},
			{Key: "target", Value: cp.Identity.Target},
			{Key: "fingerprint", Value: cp.Identity.Fingerprint},
		}})
	} else {
		unset = append(unset, bson.E{Key: "identity", Value: ""})
	}
	filter := bson.D{{Key: "_id", Value: name}}
	if owner != "" {
		filter = append(filter, bson.E{Key: "lease.owner", Value: owner}, bson.E{Key: "lease.epoch", Value: epoch})
		doc = append(doc, bson.E{Key: "savedEpoch", Value: epoch})
	}
	update := bson.D{{Key: "$set", Value: doc}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	r, err := c.coll.UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(owner == ""))
	if err != nil {
		return fmt.Errorf("changestream: save checkpoint of stream %q to %s: %w", name, c.source, err)
	}
	if owner != "" && r.MatchedCount == 0 {
		return fmt.Errorf("%w (stream %q, epoch %d, %s)", errFenced, name, epoch, c.source)
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
	if iv, err := raw.LookupErr("identity"); err == nil {
		if cp.Identity, err = decodeIdentityDoc(iv); err != nil {
			return Checkpoint{}, err
		}
	}
	return cp, nil
}

// decodeIdentityDoc reads the identity of a checkpoint document.
func decodeIdentityDoc(v bson.RawValue) (Identity, error) {
	d, ok := v.DocumentOK()
	if !ok {
		return Identity{}, fmt.Errorf("identity is BSON type %s, not a document", v.Type)
	}
	ver, ok := d.Lookup("v").AsInt64OK()
	if !ok || ver != identityVersion {
		return Identity{}, fmt.Errorf("identity version is not %d", identityVersion)
	}
	target, ok1 := d.Lookup("target").StringValueOK()
	fp, ok2 := d.Lookup("fingerprint").StringValueOK()
	if !ok1 || !ok2 {
		return Identity{}, errors.New("the identity's target or fingerprint is missing or not a string")
	}
	id := Identity{Target: target, Fingerprint: fp}
	if id.IsZero() {
		return Identity{}, errors.New("the identity is empty")
	}
	return id, nil
}
