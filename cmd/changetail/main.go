// Command changetail follows the change stream of a MongoDB deployment and
// prints each event as one line of Extended JSON, like mongosh's watch(),
// with a memory: given a resume file it saves its position when it stops
// and goes on from there the next time.
//
// Install it from a clone of the repository with
//
//	go install ./cmd/changetail
//
// or, once the module is published,
//
//	go install github.com/go-changestream/changestream/cmd/changetail@latest
//
// Usage:
//
//	changetail -uri URI [-db D [-coll C]] [-match JSON] [-full-document MODE]
//	           [-resume-file F] [-since TIME | -snapshot] [-format F] [-canonical] [-limit N]
//	changetail -embedded [flags]
//
// Without -db it watches the whole deployment (every database but admin,
// local and config); with -db, one database; with -coll too, one
// collection.
//
// Events go to standard output, one a line, as relaxed Extended JSON (types
// JSON has are plain JSON; dates, ObjectIds and the like keep their $
// wrappers), or canonical Extended JSON with -canonical, which keeps every
// BSON type exactly. -format picks another line, in the spirit of kcat's
// -f: "op" prints operationType, namespace and documentKey
// (insert shop.orders {"_id":1}), "doc" the full document only (null for an
// event without one), and a template such as '%t %o %k' any fields of the
// event (see changetail -h for the directives). When standard error is a
// terminal, a status line there shows the events, the events per second
// and the lag (how far the stream's position is behind the newest cluster
// time the server reported), or "caught up" when the server had nothing
// more.
//
// While it connects, and when the deployment goes away, changetail says on
// standard error what it is waiting for (the hosts, and the error of the
// last attempt: at once when it changes, else every 10 s), and when the
// deployment is back.
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
// With -snapshot, a run without a saved position prints every existing
// document first, as an event with operationType "snapshot", then the
// changes from a point fixed before it began (stream.StartWithSnapshot);
// with -resume-file, a run stopped during the snapshot goes on after the
// last document printed. On a terminal the status line is then a progress
// bar: the fraction of the estimated documents copied, and the collection
// being read.
//
// Failures that a new watch can mend (the network or the server down, a
// restart or failover) are mended without a gap; each attempt to watch
// again is reported on standard error.
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
