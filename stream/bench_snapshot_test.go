package stream_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// BenchmarkSnapshot reads the prefilled documents of each shape as a
// snapshot (Stream[Event[benchOrder]] with StartWithSnapshot, Next until
// the pool is read) and with a plain driver Find loop decoding each
// document into benchOrder: with the driver's defaults (driver), and with
// the sort by _id and batch size the snapshot uses (driver-sorted). One op
// is one document.
func BenchmarkSnapshot(b *testing.B) {
	for _, sh := range benchShapes {
		env := newBenchEnv(b, sh)
		forms := []struct {
			name string
			read reader
		}{
			{"driver", readFind(nil)},
			{"driver-sorted", readFind(options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(stream.DefaultSnapshotBatchSize))},
			{"Snapshot", readSnapshot},
		}
		for _, f := range forms {
			b.Run(fmt.Sprintf("doc=%s/form=%s", sh.name, f.name), func(b *testing.B) {
				runReader(b, env, 0, f.read)
			})
		}
	}
}

// readFind is the driver's Find, Cursor.Next and Cursor.Decode.
func readFind(opts *options.FindOptionsBuilder) reader {
	return func(ctx context.Context, env *benchEnv, _ int32, n int) error {
		var o []options.Lister[options.FindOptions]
		if opts != nil {
			o = append(o, opts)
		}
		cur, err := env.coll.Find(ctx, bson.D{}, o...)
		if err != nil {
			return err
		}
		defer cur.Close(ctx)
		for range n {
			if !cur.Next(ctx) {
				return fmt.Errorf("the cursor ended early: %v", cur.Err())
			}
			var d benchOrder
			if err := cur.Decode(&d); err != nil {
				return err
			}
		}
		return nil
	}
}

// readSnapshot opens a snapshot stream and reads n snapshot events.
func readSnapshot(ctx context.Context, env *benchEnv, _ int32, n int) error {
	s, err := stream.Watch[stream.Event[benchOrder]](ctx, env.coll, nil, &stream.Options{NoCheckpoint: stream.StartWithSnapshot})
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	for range n {
		ev, err := s.Next(ctx)
		if err != nil {
			return err
		}
		if ev.OperationType != stream.OpSnapshot || ev.FullDocument == nil {
			return fmt.Errorf("got a %s event", ev.OperationType)
		}
	}
	return nil
}
