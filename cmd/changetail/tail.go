package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// saveInterval is how long, at most, a printed event's position waits
// before it is saved to the resume file (Options.CheckpointInterval); it is
// also the pace of the saves while the stream is idle.
const saveInterval = time.Second

// closeTimeout bounds Close when changetail stops: the final save, which
// comes first, and killing the server's cursor.
const closeTimeout = 5 * time.Second

// disconnectTimeout bounds the client's disconnect, which only tells the
// server to end its sessions.
const disconnectTimeout = time.Second

// tailer prints one stream.
type tailer struct {
	cfg      config
	out      *bufio.Writer
	errw     io.Writer
	progress *progress
	log      *slog.Logger
	terminal bool   // stderr is a terminal
	line     []byte // the line print writes, reused
}

func (t *tailer) run(ctx context.Context) (err error) {
	copts := options.Client().ApplyURI(t.cfg.uri).SetAppName("changetail")
	waits := newWaitReporter(copts.Hosts, t.errw, t.terminal)
	client, err := mongo.Connect(copts.SetServerMonitor(waits.monitor()))
	if err != nil {
		return err
	}
	defer func() {
		waits.stop() // disconnecting is no outage
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), disconnectTimeout)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()

	opts := &stream.Options{CheckpointInterval: saveInterval, Logger: t.log}
	if t.cfg.snapshot {
		opts.NoCheckpoint = stream.StartWithSnapshot
	}
	if t.cfg.resumeFile != "" {
		store, err := stream.NewFileStore(filepath.Dir(t.cfg.resumeFile))
		if err != nil {
			return fmt.Errorf("-resume-file: %w", err)
		}
		opts.Store = store
		opts.Name = strings.TrimSuffix(filepath.Base(t.cfg.resumeFile), checkpointSuffix)
	}
	// A saved position takes precedence over these: -since only applies
	// while the resume file holds none.
	csOpts := options.ChangeStream()
	if t.cfg.fullDocument != "" {
		csOpts.SetFullDocument(options.FullDocument(t.cfg.fullDocument))
	}
	if !t.cfg.since.IsZero() {
		csOpts.SetStartAtOperationTime(&t.cfg.since)
	}
	var target stream.Watcher = client
	switch {
	case t.cfg.coll != "":
		target = client.Database(t.cfg.db).Collection(t.cfg.coll)
	case t.cfg.db != "":
		target = client.Database(t.cfg.db)
	}
	var pipeline mongo.Pipeline
	if t.cfg.match != nil {
		pipeline = mongo.Pipeline{{{Key: "$match", Value: t.cfg.match}}}
	}
	s, err := stream.Watch[bson.Raw](ctx, target, pipeline, opts, csOpts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch %s: %w", t.namespace(), err)
	}
	t.progress.follow(s.Stats)
	if resumed := !s.Stats().Checkpoint.Token.IsZero(); resumed && !t.cfg.since.IsZero() {
		fmt.Fprintf(t.errw, "changetail: resuming from %s; -since applies only to a run without a saved position\n", t.cfg.resumeFile)
	}
	defer func() {
		// Close commits the position after the last event Next
		// returned, which was printed, and saves it before it kills the
		// server's cursor.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		cerr := s.Close(cctx)
		switch st := s.Stats(); {
		case cerr == nil:
		case t.cfg.resumeFile != "" && st.CheckpointErr != nil:
			err = errors.Join(err, fmt.Errorf("save the position to %s: %w", t.cfg.resumeFile, st.CheckpointErr))
		default:
			// The position is saved; only the server's cursor could
			// not be killed (the server is unreachable): it expires on
			// the server.
			fmt.Fprintf(t.errw, "changetail: could not close the change stream on the server: %v\n", cerr)
		}
	}()
	return t.loop(ctx, s)
}

// loop prints events until ctx ends, the limit is reached or the stream
// fails. The stream saves positions itself, and only positions after
// printed events: asking Next for the next event commits the one before,
// which print has written and flushed.
func (t *tailer) loop(ctx context.Context, s *stream.Stream[bson.Raw]) error {
	for n := 1; ; n++ {
		ev, err := s.Next(ctx)
		var ce *stream.CheckpointError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil // interrupted: every event returned was printed
		case errors.As(err, &ce):
			return fmt.Errorf("cannot save the position to %s: %w", t.cfg.resumeFile, ce.Err)
		case errors.Is(err, stream.ErrInvalidated):
			return fmt.Errorf("the stream on %s was invalidated (the collection or database was dropped or renamed); the next run with this -resume-file starts after the invalidate", t.namespace())
		default:
			return fmt.Errorf("change stream on %s: %w", t.namespace(), err)
		}
		if err := t.print(ev); err != nil {
			return err
		}
		if t.cfg.limit > 0 && n >= t.cfg.limit {
			return nil
		}
	}
}

// print writes ev as -format says, and a newline.
func (t *tailer) print(ev bson.Raw) error {
	b, err := t.cfg.format.append(t.line[:0], ev)
	if err != nil {
		return err
	}
	t.line = append(b, '\n')
	t.out.Write(t.line)
	return t.out.Flush()
}

func (t *tailer) namespace() string {
	switch {
	case t.cfg.db == "":
		return "the deployment"
	case t.cfg.coll == "":
		return t.cfg.db
	}
	return t.cfg.db + "." + t.cfg.coll
}
