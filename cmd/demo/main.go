// Command demo shows a typed, resumable change stream at work, with no
// MongoDB installation: it starts an in-process mongotest server, writes
// orders to it, and follows them with a Stream[stream.Event[Order]] opened
// with Options{Name, Store: FileStore, Logger}. Midway it drops every
// connection and restarts the server, which the stream mends by itself
// (its log lines and Stats show how), then crashes the consumer: its loop
// ends before it commits the event it handled last, and a new stream with
// the same Name and Store resumes from the checkpoint. It ends with a summary that checks
// that every write's event arrived:
//
//	go run ./cmd/demo
//
// It exits 0 when no event was lost and 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 9*time.Second)
	defer cancel()
	sum, err := run(ctx, os.Stdout, Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if sum.Lost > 0 {
		os.Exit(1)
	}
}
