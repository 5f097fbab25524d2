package main

import (
	"context"
	"fmt"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// writer makes the changes the consumer follows.
type writer struct {
	orders *mongo.Collection
	tally  *tally
	pool   *mongotest.PoolWatch
	seq    int
}

var items = []string{"tea", "cake", "jam", "bread", "honey", "scones", "butter", "cream"}

// script returns the writes of a run: for each order an insert and an
// update, and for every third one a delete.
func (wr *writer) script(n int) []func(context.Context) error {
	var s []func(context.Context) error
	for i := 1; i <= n; i++ {
		s = append(s, func(ctx context.Context) error {
			return wr.do(ctx, insertKey(i), func() error {
				_, err := wr.orders.InsertOne(ctx, Order{ID: i, Item: items[i%len(items)], Qty: 1 + i%3})
				return err
			})
		})
		s = append(s, func(ctx context.Context) error {
			wr.seq++
			seq := wr.seq
			return wr.do(ctx, updateKey(seq), func() error {
				_, err := wr.orders.UpdateByID(ctx, i, bson.D{
					{Key: "$inc", Value: bson.D{{Key: "qty", Value: 1}}},
					{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}},
				})
				return err
			})
		})
		if i%3 == 0 {
			s = append(s, func(ctx context.Context) error {
				return wr.do(ctx, deleteKey(i), func() error {
					_, err := wr.orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: i}})
					return err
				})
			})
		}
	}
	return s
}

// do registers key and runs write; a failed write is withdrawn. A write
// that fails of a fault is tried again once the driver's pool is ready; an
// insert whose earlier try landed reports a duplicate key, which counts as
// done.
func (wr *writer) do(ctx context.Context, key string, write func() error) error {
	wr.tally.expect(key)
	tries := 0
	err := wr.pool.Retry(ctx, func() error {
		tries++
		if err := write(); err != nil && !(tries > 1 && mongo.IsDuplicateKeyError(err)) {
			return err
		}
		return nil
	})
	if err != nil {
		wr.tally.unexpect(key)
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
