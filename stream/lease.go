package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrLeaseLost ends the stream of an active consumer (Options.LeaseTTL)
// that is no longer sure to be the only one: another instance took the
// lease over, or the lease could not be renewed for LeaseTTL (the process
// was stopped, the server unreachable). The stream delivers no event after
// it; Watch again to wait as a standby.
var ErrLeaseLost = errors.New("changestream: the lease on the stream was lost; another instance may be the active consumer")

// errFenced is what a fenced save reports when the lease moved on.
var errFenced = fmt.Errorf("%w: the checkpoint save was refused because a newer lease holds the stream", ErrLeaseLost)

// leaser is a TokenStore that can elect one active consumer per stream
// name: CollectionStore.
type leaser interface {
	acquireLease(ctx context.Context, name, owner string, ttl time.Duration, log *slog.Logger) (*lease, error)
}

// newOwnerID names this instance in lease documents: host, pid and a
// random suffix, so that two Streams of one process differ too.
func newOwnerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// lease is the hold of the active consumer on a stream name in a
// CollectionStore document. A background goroutine renews it every TTL/3;
// the holder counts as the owner until TTL after the start of its last
// successful renewal, by its own monotonic clock, which ends before any
// standby can take over (a standby needs to see the lease unrenewed for a
// whole TTL of its own, after that renewal).
type lease struct {
	store *CollectionStore
	name  string
	owner string
	epoch int64
	ttl   time.Duration
	log   *slog.Logger

	mu         sync.Mutex
	validUntil time.Time     // monotonic
	lost       error         // set once the lease is known lost
	lostCh     chan struct{} // closed when lost is set

	stop chan struct{}
	done chan struct{}
}

// leaseMargin is the part of the TTL the holder gives up, against clocks
// that run at slightly different rates.
const leaseMargin = 10 // percent

func (l *lease) extend(start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.validUntil = start.Add(l.ttl - l.ttl*leaseMargin/100)
	}
}

// check returns nil while the holder may deliver events.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if time.Now().After(l.validUntil) {
		l.lost = fmt.Errorf("%w: stream %q: not renewed for the lease TTL %v (epoch %d)", ErrLeaseLost, l.name, l.ttl, l.epoch)
		close(l.lostCh)
		l.log.Warn("changestream: lease expired before it could be renewed; the stream stops", "epoch", l.epoch)
	}
	return l.lost
}

func (l *lease) markLost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
		close(l.lostCh)
		l.log.Warn("changestream: lease lost; the stream stops", "epoch", l.epoch, "err", err)
	}
}

// renew runs until stop: it renews the lease every TTL/3.
func (l *lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.check() != nil {
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		ok, err := l.store.renewLease(ctx, l.name, l.owner, l.epoch)
		cancel()
		switch {
		case err != nil:
			l.log.Warn("changestream: could not renew the lease; retrying", "epoch", l.epoch, "err", err)
		case !ok:
			l.markLost(fmt.Errorf("%w: stream %q: another instance took the lease over (our epoch %d)", ErrLeaseLost, l.name, l.epoch))
			return
		default:
			l.extend(start)
		}
	}
}

// release stops renewing and, unless lost, gives the lease up so that a
// standby takes over at once.
func (l *lease) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if l.check() != nil {
		return nil
	}
	l.markLost(fmt.Errorf("%w: stream %q: released by Close", ErrLeaseLost, l.name))
	return l.store.releaseLease(ctx, l.name, l.owner, l.epoch)
}

// fencedStore saves a stream's checkpoints only while its lease holds:
// each save is an update conditional on the lease's owner and epoch.
type fencedStore struct {
	*CollectionStore
	l *lease
}

func (f fencedStore) Save(ctx context.Context, name string, cp Checkpoint) error {
	err := f.saveFenced(ctx, name, cp, f.l.owner, f.l.epoch)
	if errors.Is(err, ErrLeaseLost) {
		f.l.markLost(err)
	}
	return err
}

// Lease fields of a CollectionStore document.
const (
	leaseField = "lease"
)

// leaseDoc is the lease of a checkpoint document.
type leaseDoc struct {
	Owner     string    `bson:"owner"`
	Epoch     int64     `bson:"epoch"`
	Beat      int64     `bson:"beat"` // -1: released
	RenewedAt time.Time `bson:"renewedAt"`
}

// acquireLease waits as a standby until this instance holds the lease of
// name, and returns it renewing in the background. A standby takes over a
// lease it has seen unchanged (same epoch, same renewal count) for a whole
// TTL, or at once one that was released, with an update conditional on
// what it saw; so two standbys never both win, and an owner that renewed
// in between keeps its lease.
func (c *CollectionStore) acquireLease(ctx context.Context, name, owner string, ttl time.Duration, log *slog.Logger) (*lease, error) {
	if err := c.check(ctx, name); err != nil {
		return nil, err
	}
	poll := ttl / 10
	var seen leaseDoc
	var seenAt time.Time
	standby := false
	for {
		start := time.Now()
		var doc struct {
			Lease *leaseDoc `bson:"lease"`
		}
		err := c.coll.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&doc)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("changestream: read the lease of stream %q from %s: %w", name, c.source, err)
		}
		var filter bson.D
		var epoch int64
		var from *leaseDoc
		switch {
		case doc.Lease == nil:
			filter = bson.D{{Key: "_id", Value: name}, {Key: leaseField, Value: bson.D{{Key: "$exists", Value: false}}}}
			epoch = 1
		case doc.Lease.Beat == -1 || (seenAt != time.Time{} && doc.Lease.Epoch == seen.Epoch && doc.Lease.Beat == seen.Beat && time.Since(seenAt) >= ttl):
			filter = bson.D{{Key: "_id", Value: name}, {Key: "lease.epoch", Value: doc.Lease.Epoch}, {Key: "lease.beat", Value: doc.Lease.Beat}}
			epoch = doc.Lease.Epoch + 1
			from = doc.Lease
		default:
			if seenAt.IsZero() || doc.Lease.Epoch != seen.Epoch || doc.Lease.Beat != seen.Beat {
				seen, seenAt = *doc.Lease, start
			}
			if !standby {
				standby = true
				log.Info("changestream: standby: another instance holds the stream", "role", "standby", "owner", doc.Lease.Owner, "epoch", doc.Lease.Epoch)
			}
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			continue
		}
		upd := bson.D{
			{Key: "$set", Value: bson.D{{Key: "lease.owner", Value: owner}, {Key: "lease.epoch", Value: epoch}, {Key: "lease.beat", Value: int64(0)}}},
			{Key: "$currentDate", Value: bson.D{{Key: "lease.renewedAt", Value: true}}},
		}
		start = time.Now()
		r, err := c.coll.UpdateOne(ctx, filter, upd, options.UpdateOne().SetUpsert(doc.Lease == nil))
		if mongo.IsDuplicateKeyError(err) {
			continue // another standby created it first
		}
		if err != nil {
			return nil, fmt.Errorf("changestream: take the lease of stream %q in %s: %w", name, c.source, err)
		}
		if r.MatchedCount == 0 && r.UpsertedCount == 0 {
			seenAt = time.Time{}
			continue // someone else moved first
		}
		l := &lease{store: c, name: name, owner: owner, epoch: epoch, ttl: ttl, log: log, stop: make(chan struct{}), done: make(chan struct{}), lostCh: make(chan struct{})}
		l.extend(start)
		if from != nil {
			log.Info("changestream: active: took the stream over", "role", "active", "epoch", epoch, "from", from.Owner, "released", from.Beat == -1)
		} else {
			log.Info("changestream: active", "role", "active", "epoch", epoch)
		}
		go l.renew()
		return l, nil
	}
}

// renewLease counts one renewal of the lease; ok is false when the lease
// is no longer owner's at epoch.
func (c *CollectionStore) renewLease(ctx context.Context, name, owner string, epoch int64) (ok bool, err error) {
	r, err := c.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: name}, {Key: "lease.owner", Value: owner}, {Key: "lease.epoch", Value: epoch}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "lease.beat", Value: 1}}}, {Key: "$currentDate", Value: bson.D{{Key: "lease.renewedAt", Value: true}}}})
	if err != nil {
		return false, err
	}
	return r.MatchedCount == 1, nil
}

// releaseLease marks the lease released (beat -1) if it is still owner's.
func (c *CollectionStore) releaseLease(ctx context.Context, name, owner string, epoch int64) error {
	_, err := c.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: name}, {Key: "lease.owner", Value: owner}, {Key: "lease.epoch", Value: epoch}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lease.beat", Value: int64(-1)}}}})
	if err != nil {
		return fmt.Errorf("changestream: release the lease of stream %q in %s: %w", name, c.source, err)
	}
	return nil
}
