package main

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sampleInterval is the pace of the embedded sample writer.
const sampleInterval = 250 * time.Millisecond

// startEmbedded starts a mongotest server and a writer that inserts,
// updates and deletes orders in db.coll until ctx ends or stop is called.
// stop waits for the writer and closes the server.
func startEmbedded(ctx context.Context, db, coll string) (uri string, stop func(), err error) {
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		return "", nil, err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetAppName("changetail-writer"))
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeSamples(wctx, client.Database(db).Collection(coll))
	}()
	stop = func() {
		cancel()
		wg.Wait()
		_ = client.Disconnect(context.Background())
		srv.Close()
	}
	return srv.URI(), stop, nil
}

// writeSamples changes orders at sampleInterval: mostly inserts, some
// updates and deletes of earlier orders.
func writeSamples(ctx context.Context, orders *mongo.Collection) {
	items := []string{"tea", "cake", "jam", "bread", "honey", "scones"}
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	next := 1
	for {
		var err error
		switch r := rand.IntN(10); {
		case r < 6 || next < 3:
			_, err = orders.InsertOne(ctx, bson.D{
				{Key: "_id", Value: next},
				{Key: "item", Value: items[rand.IntN(len(items))]},
				{Key: "qty", Value: 1 + rand.IntN(5)},
				{Key: "at", Value: time.Now()},
			})
			next++
		case r < 9:
			_, err = orders.UpdateByID(ctx, 1+rand.IntN(next-1), bson.D{{Key: "$inc", Value: bson.D{{Key: "qty", Value: 1}}}})
		default:
			_, err = orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: 1 + rand.IntN(next-1)}})
		}
		if err != nil && ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
