package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The convergence tests: convDocs documents exist before the stream
// starts; a writer inserts, updates, replaces and deletes while the
// snapshot runs and after it; the consumer applies every event to a map,
// which must end equal to the collection.
const (
	convDocs  = 10_000
	convKeys  = 15_000 // keys the writer picks from: the existing ones and new ones
	convRound = 50     // writes per bulk write
	// convSentinel is the key of the writer's last write: once its event
	// is applied, every change before it was.
	convSentinel = -1
)

// convDoc is the document of the convergence tests.
type convDoc struct {
	ID  int `bson:"_id"`
	Seq int `bson:"seq"`
}

// convOp is an event reduced to what the map needs: op is 'S' (a snapshot
// document), 'P' (an insert or replace: put), 'U' (an update that set seq)
// or 'D' (a delete).
type convOp struct {
	op       byte
	key, seq int
}

// convOpOf reduces an event.
func convOpOf(ev stream.Event[convDoc]) (convOp, error) {
	var key int
	if err := bson.Raw(ev.DocumentKey).Lookup("_id").Unmarshal(&key); err != nil {
		return convOp{}, fmt.Errorf("documentKey %v: %w", ev.DocumentKey, err)
	}
	switch ev.OperationType {
	case stream.OpSnapshot, stream.OpInsert, stream.OpReplace:
		if ev.FullDocument == nil {
			return convOp{}, fmt.Errorf("%s of %d without a full document", ev.OperationType, key)
		}
		op := byte('P')
		if ev.OperationType == stream.OpSnapshot {
			op = 'S'
		}
		return convOp{op: op, key: key, seq: ev.FullDocument.Seq}, nil
	case stream.OpUpdate:
		var seq int
		if ev.UpdateDescription == nil {
			return convOp{}, fmt.Errorf("update of %d without an updateDescription", key)
		}
		if err := ev.UpdateDescription.UpdatedFields.Lookup("seq").Unmarshal(&seq); err != nil {
			return convOp{}, fmt.Errorf("update of %d: %w", key, err)
		}
		return convOp{op: 'U', key: key, seq: seq}, nil
	case stream.OpDelete:
		return convOp{op: 'D', key: key}, nil
	}
	return convOp{}, fmt.Errorf("unexpected %s event", ev.OperationType)
}

// apply applies o to m, idempotently: puts, sets and deletes, never an
// increment; an update of a document the map does not hold is skipped (a
// delete of it comes later, or came already in a replay).
func (o convOp) apply(m map[int]int) {
	switch o.op {
	case 'S', 'P':
		m[o.key] = o.seq
	case 'U':
		if _, ok := m[o.key]; ok {
			m[o.key] = o.seq
		}
	case 'D':
		delete(m, o.key)
	}
}

// convSeed inserts the documents that exist before the stream starts.
func convSeed(ctx context.Context, coll *mongo.Collection) error {
	docs := make([]any, 0, convDocs)
	for i := range convDocs {
		docs = append(docs, convDoc{ID: i, Seq: 1})
	}
	_, err := coll.InsertMany(ctx, docs)
	return err
}

// convWriter makes writes writes in rounds of convRound distinct keys,
// each an insert (of a key that does not exist), or an update, a replace
// or a delete (of one that does), then the sentinel. gate, when not nil,
// is called before each round with the number of rounds done. mongotest
// scans a collection for each filter, so a round's updates and deletes
// are one command each ($in), and a round has at most convReplaces
// replaces.
func convWriter(ctx context.Context, coll *mongo.Collection, writes int, seed uint64, gate func(round int) error) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	seq := make(map[int]int, convKeys)
	for i := range convDocs {
		seq[i] = 1
	}
	const convReplaces = 1
	for round := 0; round*convRound < writes; round++ {
		if gate != nil {
			if err := gate(round); err != nil {
				return err
			}
		}
		var inserts []any
		var updates, deletes bson.A
		var replaces []convDoc
		for _, k := range rng.Perm(convKeys)[:convRound] {
			n, exists := seq[k]
			switch {
			case !exists:
				seq[k] = 1
				inserts = append(inserts, convDoc{ID: k, Seq: 1})
			case rng.IntN(4) == 0:
				delete(seq, k)
				deletes = append(deletes, k)
			case rng.IntN(8) == 0 && len(replaces) < convReplaces:
				seq[k] = n + 1
				replaces = append(replaces, convDoc{ID: k, Seq: n + 1})
			default:
				seq[k] = n + 1 // by the $inc below
				updates = append(updates, k)
			}
		}
		in := func(keys bson.A) bson.D { return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}} }
		if len(inserts) > 0 {
			if _, err := coll.InsertMany(ctx, inserts); err != nil {
				return fmt.Errorf("round %d: inserts: %w", round, err)
			}
		}
		if len(updates) > 0 {
			r, err := coll.UpdateMany(ctx, in(updates), bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: 1}}}})
			if err != nil || r.ModifiedCount != int64(len(updates)) {
				return fmt.Errorf("round %d: updates: %v, %v", round, r, err)
			}
		}
		for _, d := range replaces {
			r, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d)
			if err != nil || r.ModifiedCount != 1 {
				return fmt.Errorf("round %d: replace: %v, %v", round, r, err)
			}
		}
		if len(deletes) > 0 {
			r, err := coll.DeleteMany(ctx, in(deletes))
			if err != nil || r.DeletedCount != int64(len(deletes)) {
				return fmt.Errorf("round %d: deletes: %v, %v", round, r, err)
			}
		}
	}
	_, err := coll.InsertOne(ctx, convDoc{ID: convSentinel, Seq: 1})
	return err
}

// convContents reads the collection into a map.
func convContents(ctx context.Context, coll *mongo.Collection) (map[int]int, error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var docs []convDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	m := make(map[int]int, len(docs))
	for _, d := range docs {
		m[d.ID] = d.Seq
	}
	return m, nil
}

// convModes consume a stream to its end in the four ways, calling handle
// for each event from one goroutine at a time; handle returns false to
// stop.
var convModes = map[string]func(ctx context.Context, s *stream.Stream[stream.Event[convDoc]], handle func(stream.Event[convDoc]) (bool, error)) error{
	"next": func(ctx context.Context, s *stream.Stream[stream.Event[convDoc]], handle func(stream.Event[convDoc]) (bool, error)) error {
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				return err
			}
			if more, err := handle(ev); !more || err != nil {
				return err
			}
		}
	},
	"all": func(ctx context.Context, s *stream.Stream[stream.Event[convDoc]], handle func(stream.Event[convDoc]) (bool, error)) error {
		for ev, err := range s.All(ctx) {
			if err != nil {
				return err
			}
			if more, err := handle(ev); !more || err != nil {
				return err
			}
		}
		return nil
	},
	"batches": func(ctx context.Context, s *stream.Stream[stream.Event[convDoc]], handle func(stream.Event[convDoc]) (bool, error)) error {
		for batch, err := range s.Batches(ctx, 200, 10*time.Millisecond) {
			if err != nil {
				return err
			}
			for _, ev := range batch {
				if more, err := handle(ev); !more || err != nil {
					return err
				}
			}
		}
		return nil
	},
	"process": func(ctx context.Context, s *stream.Stream[stream.Event[convDoc]], handle func(stream.Event[convDoc]) (bool, error)) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var mu sync.Mutex
		err := stream.Process(ctx, s, func(_ context.Context, ev stream.Event[convDoc]) error {
			mu.Lock()
			defer mu.Unlock()
			more, err := handle(ev)
			if !more {
				cancel()
			}
			return err
		}, &stream.ProcessOptions[stream.Event[convDoc]]{Workers: 8})
		if ctx.Err() != nil {
			return nil
		}
		return err
	},
}

// TestSnapshotConvergence runs the convergence test in this process, once
// per way of consuming.
func TestSnapshotConvergence(t *testing.T) {
	for _, mode := range []string{"next", "all", "batches", "process"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			coll := f.db.Collection("conv")
			if err := convSeed(ctx, coll); err != nil {
				t.Fatal(err)
			}
			s, err := stream.Watch[stream.Event[convDoc]](ctx, coll, nil, &stream.Options{NoCheckpoint: stream.StartWithSnapshot, SnapshotBatchSize: 500})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			const writes = 1000
			writeErr := make(chan error, 1)
			go func() { writeErr <- convWriter(ctx, coll, writes, 1, nil) }()

			got := make(map[int]int)
			var handled int64
			sentinel := false
			err = convModes[mode](ctx, s, func(ev stream.Event[convDoc]) (bool, error) {
				o, err := convOpOf(ev)
				if err != nil {
					return false, err
				}
				o.apply(got)
				handled++
				if o.key == convSentinel && o.op != 'S' {
					sentinel = true
				}
				// Once the sentinel's change was handled, every event
				// delivered is (Process hands events over before their
				// handlers run).
				return !sentinel || handled < s.Stats().Events, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := <-writeErr; err != nil {
				t.Fatal(err)
			}
			want, err := convContents(ctx, coll)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("the map differs from the collection (-collection +map):\n%s", diff)
			}
			if st := s.Stats().Snapshot; st.Running || st.Copied < convDocs-writes {
				t.Fatalf("Stats().Snapshot = %+v", st)
			}
		})
	}
}
