package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// member is the running state of Group.Run: the membership it sees and the
// partitions it consumes. Only Run's goroutine touches it, but for exits,
// which the partitions' goroutines send.
type member[T any] struct {
	g     *Group[T]
	fn    func(context.Context, Partition, *Stream[T]) error
	start Token // the group's start point

	seen     map[string]seenMember // other members, by name, as last read
	assigned []int                 // the partitions the last membership dealt to this member
	dealt    bool                  // assigned was computed at least once

	slots    map[int]*slot // partitions consumed, by index
	stopping map[int]*slot // partitions told to stop that have not exited yet
	exits    chan slotExit
}

// seenMember is what a member last read of another member's document, and
// when (by its own monotonic clock) that last changed.
type seenMember struct {
	beat  int64
	since time.Time
}

// slot is the goroutine consuming one partition.
type slot struct {
	cancel context.CancelFunc
}

// slotExit is what a partition's goroutine reports when it ends: nil when
// it was stopped, the error that ends the group otherwise.
type slotExit struct {
	k   int
	sl  *slot
	err error
}

// memberID is the _id of member name's document.
func (m *member[T]) memberID(name string) bson.D {
	return bson.D{{Key: "group", Value: m.g.opts.Name}, {Key: "member", Value: name}}
}

// run is Group.Run after join.
func (m *member[T]) run(ctx context.Context) error {
	g := m.g
	ttl := g.opts.LeaseTTL
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	var members []string
	for {
		if err := m.heartbeat(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("changestream: group: could not renew this member's document; retrying", "err", err)
		}
		if ms, err := m.members(ctx); err != nil {
			if ctx.Err() == nil {
				g.log.Warn("changestream: group: could not read the members; retrying", "err", err)
			}
		} else {
			members = ms
		}
		if members != nil && ctx.Err() == nil {
			m.rebalance(ctx, members)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				m.stopAll()
				m.leave()
				return ctx.Err()
			case ex := <-m.exits:
				if m.stopping[ex.k] == ex.sl {
					delete(m.stopping, ex.k)
				}
				if m.slots[ex.k] == ex.sl {
					delete(m.slots, ex.k)
				}
				if ex.err != nil {
					m.stopAll()
					m.leave()
					return ex.err
				}
				if members != nil {
					m.rebalance(ctx, members) // a partition stopped for another may start again
				}
			case <-tick.C:
				break wait
			}
		}
	}
}

// heartbeat renews this member's document.
func (m *member[T]) heartbeat(ctx context.Context) error {
	g := m.g
	cctx, cancel := context.WithTimeout(ctx, g.opts.LeaseTTL/3)
	defer cancel()
	owned := g.Stats().Owned
	if owned == nil {
		owned = []int{}
	}
	_, err := g.store.coll.UpdateOne(cctx, bson.D{{Key: "_id", Value: m.memberID(m.g.opts.Instance)}}, bson.D{
		{Key: "$inc", Value: bson.D{{Key: "beat", Value: int64(1)}}},
		{Key: "$set", Value: bson.D{{Key: "owned", Value: owned}, {Key: "partitions", Value: g.parts}}},
		{Key: "$currentDate", Value: bson.D{{Key: "renewedAt", Value: true}}},
	}, options.UpdateOne().SetUpsert(true))
	return err
}

// members reads the members' documents and returns the names of those
// alive: this member, and every other whose document changed within the
// last LeaseTTL as this member saw it. Documents unchanged for twice that
// are removed.
func (m *member[T]) members(ctx context.Context) ([]string, error) {
	g := m.g
	ttl := g.opts.LeaseTTL
	cctx, cancel := context.WithTimeout(ctx, ttl/3)
	defer cancel()
	cur, err := g.store.coll.Find(cctx, bson.D{{Key: "_id.group", Value: g.opts.Name}, {Key: "_id.member", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		return nil, err
	}
	var docs []struct {
		ID struct {
			Member string `bson:"member"`
		} `bson:"_id"`
		Beat int64 `bson:"beat"`
	}
	if err := cur.All(cctx, &docs); err != nil {
		return nil, err
	}
	now := time.Now()
	alive := []string{g.opts.Instance}
	present := map[string]bool{}
	for _, d := range docs {
		name := d.ID.Member
		if name == g.opts.Instance {
			continue
		}
		present[name] = true
		s, ok := m.seen[name]
		if !ok || s.beat != d.Beat {
			s = seenMember{beat: d.Beat, since: now}
			m.seen[name] = s
		}
		switch age := now.Sub(s.since); {
		case age < ttl:
			alive = append(alive, name)
		case age >= 2*ttl:
			// Gone for long: tidy up, unless it came back meanwhile.
			_, _ = g.store.coll.DeleteOne(cctx, bson.D{{Key: "_id", Value: m.memberID(name)}, {Key: "beat", Value: s.beat}})
		}
	}
	for name := range m.seen {
		if !present[name] {
			delete(m.seen, name)
		}
	}
	slices.Sort(alive)
	return alive, nil
}

// rebalance deals the partitions out over members, stops the partitions
// that are no longer this member's and starts its new ones.
func (m *member[T]) rebalance(ctx context.Context, members []string) {
	g := m.g
	mine := assignPartitions(members, g.parts)[g.opts.Instance]
	if !m.dealt || !slices.Equal(mine, m.assigned) {
		g.mu.Lock()
		if m.dealt {
			g.stats.Rebalances++
		}
		g.stats.Assigned = slices.Clone(mine)
		g.mu.Unlock()
		g.log.Info("changestream: group: partitions assigned", "members", members, "partitions", mine)
		m.assigned, m.dealt = mine, true
	}
	g.mu.Lock()
	g.stats.Members = slices.Clone(members)
	g.mu.Unlock()
	for k, sl := range m.slots {
		if !slices.Contains(mine, k) {
			sl.cancel()
			delete(m.slots, k)
			m.stopping[k] = sl
		}
	}
	for _, k := range mine {
		if m.slots[k] != nil || m.stopping[k] != nil {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		sl := &slot{cancel: cancel}
		m.slots[k] = sl
		go func() {
			err := m.consume(sctx, k)
			cancel()
			m.exits <- slotExit{k: k, sl: sl, err: err}
		}()
	}
}

// stopAll stops every partition and waits until each has exited.
func (m *member[T]) stopAll() {
	for k, sl := range m.slots {
		sl.cancel()
		m.stopping[k] = sl
		delete(m.slots, k)
	}
	for range len(m.stopping) {
		ex := <-m.exits
		delete(m.stopping, ex.k)
	}
}

// leave removes this member's document, so that the others deal its
// partitions out at once.
func (m *member[T]) leave() {
	g := m.g
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.LeaseTTL)
	defer cancel()
	if _, err := g.store.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: m.memberID(m.g.opts.Instance)}}); err != nil {
		g.log.Warn("changestream: group: could not remove this member's document; the others will count it gone after the lease TTL", "err", err)
	}
	g.log.Info("changestream: group: left")
}

// consume runs the partition k until ctx ends (nil) or an error ends the
// group. It opens the partition's stream, which waits as a standby until
// the partition's lease is free, calls fn, and closes the stream; after a
// lost lease it starts again.
func (m *member[T]) consume(ctx context.Context, k int) error {
	g := m.g
	p := Partition{Index: k, Count: g.parts, Name: partitionName(g.opts.Name, k, g.parts)}
	opts := g.opts
	opts.Name = p.Name
	opts.groupStart = m.start
	opts.Logger = g.log.With("partition", k)
	pipeline, err := partitionPipeline(g.pipeline, k, g.parts)
	if err != nil {
		return err // NewGroup checked it
	}
	bo := backoff{initial: opts.RewatchDelay, max: opts.RewatchMaxDelay}
	for fails := 0; ; {
		s, err := Watch[T](ctx, g.target, pipeline, &opts, g.csOpts...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !transient(err) {
				return fmt.Errorf("changestream: group %q: open partition %d: %w", g.opts.Name, k, err)
			}
			fails++
			opts.Logger.Warn("changestream: group: could not open the partition; retrying", "err", err)
			t := time.NewTimer(bo.delay(fails))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		fails = 0
		epoch := s.Stats().LeaseEpoch
		m.owned(k, true)
		opts.Logger.Info("changestream: group: partition acquired", "epoch", epoch)
		ferr := m.call(ctx, p, s)
		cerr := s.Close(context.WithoutCancel(ctx))
		m.owned(k, false)
		opts.Logger.Info("changestream: group: partition released", "epoch", epoch, "err", errors.Join(ferr, cerr))
		switch {
		case ctx.Err() != nil:
			if cerr != nil && !errors.Is(cerr, ErrLeaseLost) {
				opts.Logger.Warn("changestream: group: closing the partition failed", "err", cerr)
			}
			return nil
		case errors.Is(ferr, ErrLeaseLost) || (ferr == nil && errors.Is(cerr, ErrLeaseLost)):
			continue // a standby again while it stays ours
		case ferr != nil:
			return fmt.Errorf("changestream: group %q partition %d: %w", g.opts.Name, k, ferr)
		case cerr != nil:
			return fmt.Errorf("changestream: group %q partition %d: %w", g.opts.Name, k, cerr)
		default:
			return fmt.Errorf("changestream: group %q partition %d: the function returned before its context ended", g.opts.Name, k)
		}
	}
}

// call runs fn, a panic of which is an error of the group rather than a
// dead process.
func (m *member[T]) call(ctx context.Context, p Partition, s *Stream[T]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("changestream: the group's function panicked on partition %d: %v", p.Index, r)
		}
	}()
	return m.fn(ctx, p, s)
}

// owned records that this member holds (or no longer holds) partition k.
func (m *member[T]) owned(k int, held bool) {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if held {
		g.stats.Owned = append(g.stats.Owned, k)
		slices.Sort(g.stats.Owned)
		g.stats.Acquired++
	} else {
		g.stats.Owned = slices.DeleteFunc(g.stats.Owned, func(i int) bool { return i == k })
		g.stats.Released++
	}
}
