// Command mongotest serves mongotest's in-process MongoDB (a single-node
// replica set speaking the wire protocol of MongoDB 8.2) on a TCP address,
// so that drivers of any language, mongosh and other tools can be pointed
// at it.
//
// Usage:
//
//	mongotest [-addr 127.0.0.1:27017] [-replset rs0] [-history N] [-cursor-timeout D] [-max-conns N] [-v]
//
// The first line it prints on standard output is the connection string.
// It serves until interrupted (SIGINT or SIGTERM), then closes every
// connection and exits. The data lives in memory only.
//
// The server has no authentication and no TLS: anyone who can reach the
// address can read, change and drop every database. Keep it on a loopback
// address (the default); given any other -addr it prints a warning.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-changestream/changestream/mongotest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run parses args, serves until a signal arrives (or until stop is closed,
// for tests) and returns the exit code.
func run(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	fs := flag.NewFlagSet("mongotest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mongotest [flags]\n\n%s\n\nFlags:\n", noAuthNotice)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:27017", "TCP `address` to listen on")
	replSet := fs.String("replset", "rs0", "replica-set `name` to report")
	history := fs.Int("history", 0, "keep at most `N` change-log entries (0: all)")
	cursorTimeout := fs.Duration("cursor-timeout", 0, "kill cursors left unused this `long` (0: ten minutes, as a real server; negative: never)")
	maxConns := fs.Int("max-conns", 0, "accept at most `N` connections at once, closing those beyond (0: 1024)")
	verbose := fs.Bool("v", false, "log connections and commands to standard error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mongotest: unexpected arguments %q\n", fs.Args())
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv, err := mongotest.NewServer(&mongotest.Options{
		Addr:           *addr,
		ReplicaSet:     *replSet,
		HistoryLimit:   *history,
		CursorTimeout:  *cursorTimeout,
		MaxConnections: *maxConns,
		Logger:         logger,
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !isLoopback(srv.Addr()) {
		fmt.Fprintf(stderr, "mongotest: WARNING: listening on %s, which is not a loopback address: %s\n", srv.Addr(), noAuthNotice)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// The URI comes first, once the server is ready and signals are caught.
	fmt.Fprintln(stdout, srv.URI())
	select {
	case s := <-sigs:
		logger.Info("mongotest: shutting down", "signal", s)
	case <-stop:
	}
	srv.Close()
	return 0
}

// noAuthNotice is what -h and the non-loopback warning say about access.
const noAuthNotice = "mongotest serves an in-memory test server with no authentication and no TLS: anyone who can reach its address can read, change and drop every database."

// isLoopback reports whether the listening address hostPort is on a
// loopback interface.
func isLoopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
