// Command changetail follows the change stream of a MongoDB deployment and
// prints each event as one line of Extended JSON, like mongosh's watch(),
// with a memory: given a resume file it saves its position when it stops
// and goes on from there the next time.
//
// Install it with
//
//	go install github.com/go-changestream/changestream/cmd/changetail@latest
//
// Usage:
//
//	changetail -uri URI -db D [-coll C] [-match JSON] [-full-document MODE]
//	           [-resume-file F] [-since TIME] [-canonical] [-limit N]
//	changetail -embedded [flags]
//
// Events go to standard output, one a line, as relaxed Extended JSON (types
// JSON has are plain JSON; dates, ObjectIds and the like keep their $
// wrappers), or canonical Extended JSON with -canonical, which keeps every
// BSON type exactly. When standard error is a terminal, a status line there
// shows the events, the events per second and the lag (how far the stream's
// position is behind the clock).
//
// With -resume-file, the file (its name must end in .checkpoint.json) is
// the stream's checkpoint in a stream.FileStore (Options.Name is the name
// before .checkpoint.json). Only the position after an event already
// printed is saved: every 100 events or once a second, whichever comes
// first, once a second while the stream is idle, and when changetail
// stops, also at -limit. The next run resumes after it; -since applies
// only while the file holds no position. Delivery is at least once: after
// a crash, up to a second of events may be printed again; none is skipped.
// An unreadable file is an error, never a fresh start.
//
// Failures that a new watch can mend (the network or the server down, a
// restart or failover) are mended without a gap; each attempt is reported
// on standard error.
//
// Ctrl-C (SIGINT) or SIGTERM stops changetail cleanly: it saves the
// position and exits 0. The save comes first and does not wait for the
// server; closing the change stream on the server then waits at most 5
// seconds when the server is unreachable (a second Ctrl-C skips that wait). Credentials in the URI are never printed, also not
// in the driver's error messages. Exit status: 0 when stopped or done, 1
// when the deployment or the stream failed, 2 for bad flags.
//
// -embedded starts an in-process mongotest server with a writer that
// changes sample orders, and watches it: a way to see changetail work
// without a deployment.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
