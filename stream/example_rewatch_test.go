package stream_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
)

// A stream watches again after a failure the driver does not resume, and
// logs each attempt. The handler leaves out the time and the attributes
// that change from run to run (token, delay, err).
func ExampleOptions_rewatch() {
	srv, client := connectExample()
	defer srv.Close()
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	coll := client.Database("shop").Collection("orders")

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "token", "delay", "err":
				return slog.Attr{}
			}
			return a
		},
	}))
	s, err := stream.Watch[stream.Event[Order]](ctx, coll, nil, &stream.Options{Logger: logger, Name: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	// The next getMore fails with HostUnreachable without the
	// ResumableChangeStreamError label: the driver gives up, the stream
	// watches again after the last event it returned.
	srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
	if _, err := coll.InsertOne(ctx, Order{ID: 1, Item: "tea", Qty: 2}); err != nil {
		log.Fatal(err)
	}
	ev, err := s.Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.OperationType, ev.FullDocument.Item)
	fmt.Println("rewatches:", s.Stats().Rewatches)
	// Output:
	// level=WARN msg="changestream: watching again" stream=orders attempt=1 resume=resumeAfter
	// level=INFO msg="changestream: watching again succeeded" stream=orders attempt=1 resume=resumeAfter
	// insert tea
	// rewatches: 1
}
