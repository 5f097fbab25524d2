package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// run is the whole command: it parses args, tails until ctx ends, the
// limit is reached or the stream fails, and returns the exit status.
// Everything it writes to stderr goes through a redactor.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	errw := &redactWriter{w: stderr, r: newRedactor(uriArg(args))}
	cfg, err := parseFlags(args, errw, time.Now())
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(errw, "changetail: %v (changetail -h for help)\n", err)
		return 2
	}
	if cfg.uri != "" {
		errw.r = newRedactor(cfg.uri)
	}

	var stopEmbedded func()
	if cfg.embedded {
		writeTo := cfg.coll
		if writeTo == "" {
			writeTo = "orders"
		}
		uri, stop, err := startEmbedded(ctx, cfg.db, writeTo)
		if err != nil {
			fmt.Fprintf(errw, "changetail: %v\n", err)
			return 1
		}
		stopEmbedded = stop
		cfg.uri = uri
		fmt.Fprintf(errw, "changetail: watching %s on an embedded server at %s, with a sample writer on %s.%s; Ctrl-C stops\n",
			(&tailer{cfg: cfg}).namespace(), uri, cfg.db, writeTo)
	}

	var p progress
	var sp *statusPrinter
	terminal := isTerminal(stderr)
	if terminal {
		sp = startStatus(errw, &p)
	}
	out := bufio.NewWriter(stdout)
	t := &tailer{cfg: cfg, out: out, errw: errw, progress: &p, log: newLogger(errw, terminal), terminal: terminal}
	err = t.run(ctx)
	if sp != nil {
		sp.stop()
		fmt.Fprintf(errw, "changetail: %d events\n", p.get().Events)
	}
	if stopEmbedded != nil {
		stopEmbedded()
	}
	if err != nil {
		fmt.Fprintf(errw, "changetail: %v\n", err)
		return 1
	}
	return 0
}

// newLogger returns the stream's logger: warnings and errors (a new watch
// after a failure, a position that could not be saved) as lines on w,
// through the redactor. On a terminal each line first clears the status
// line.
func newLogger(w io.Writer, terminal bool) *slog.Logger {
	prefix := "changetail: "
	if terminal {
		prefix = "\r\x1b[K" + prefix
	}
	return slog.New(slog.NewTextHandler(&prefixWriter{w: w, prefix: prefix}, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// prefixWriter writes each log record, a whole line, after a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(pw.w, pw.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// uriArg finds the -uri value in args before they are parsed, so that even
// a message about a bad flag cannot show its credentials.
func uriArg(args []string) string {
	for i, a := range args {
		switch {
		case a == "-uri" || a == "--uri":
			if i+1 < len(args) {
				return args[i+1]
			}
		case len(a) > 5 && (a[:5] == "-uri=" || (len(a) > 6 && a[:6] == "--uri=")):
			_, v, _ := cutEq(a)
			return v
		}
	}
	return ""
}

func cutEq(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
