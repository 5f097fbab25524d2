package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// saveInterval is how often, at most, the position is saved while events
// come or the stream is idle; it is also saved when changetail stops.
const saveInterval = time.Second

// tailer prints one stream.
type tailer struct {
	cfg      config
	out      *bufio.Writer
	errw     io.Writer
	progress *progress

	store     *stream.FileStore // nil without -resume-file
	name      string            // the stream name in store
	saved     stream.Token      // the last token saved
	lastSaved time.Time
}

func (t *tailer) run(ctx context.Context) error {
	client, err := mongo.Connect(options.Client().ApplyURI(t.cfg.uri).SetAppName("changetail"))
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
	}()

	csOpts := options.ChangeStream()
	if t.cfg.fullDocument != "" {
		csOpts.SetFullDocument(options.FullDocument(t.cfg.fullDocument))
	}
	resumed, err := t.loadPosition(ctx, csOpts)
	if err != nil {
		return err
	}
	if !resumed && !t.cfg.since.IsZero() {
		csOpts.SetStartAtOperationTime(&t.cfg.since)
	}
	var target stream.Watcher = client.Database(t.cfg.db)
	if t.cfg.coll != "" {
		target = client.Database(t.cfg.db).Collection(t.cfg.coll)
	}
	var pipeline mongo.Pipeline
	if t.cfg.match != nil {
		pipeline = mongo.Pipeline{{{Key: "$match", Value: t.cfg.match}}}
	}
	s, err := stream.Watch[bson.Raw](ctx, target, pipeline, nil, csOpts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch %s: %w", t.namespace(), err)
	}
	defer s.Close(context.WithoutCancel(ctx))
	return t.loop(ctx, s)
}

// loop prints events until ctx ends, the limit is reached or the stream
// fails. Positions are saved only here, between events, so a saved token
// is never ahead of what was printed.
func (t *tailer) loop(ctx context.Context, s *stream.Stream[bson.Raw]) error {
	var n int
	for {
		wctx, cancel := context.WithTimeout(ctx, saveInterval)
		ev, err := s.Next(wctx)
		cancel()
		switch {
		case err == nil:
			if err := t.print(ev); err != nil {
				return err
			}
			n++
			t.progress.events.Add(1)
			if tt, ti, ok := ev.Lookup("clusterTime").TimestampOK(); ok {
				t.progress.at(bson.Timestamp{T: tt, I: ti})
			}
			if op, _ := ev.Lookup("operationType").StringValueOK(); op == string(stream.OpInvalidate) {
				if err := t.save(ctx, s, true); err != nil {
					return err
				}
				return fmt.Errorf("the stream on %s was invalidated (the collection or database was dropped or renamed); the next run with this -resume-file starts after the invalidate", t.namespace())
			}
			if t.cfg.limit > 0 && n >= t.cfg.limit {
				return t.save(ctx, s, true)
			}
		case ctx.Err() != nil:
			// Interrupted: every event returned was printed.
			return t.save(ctx, s, true)
		case errors.Is(err, context.DeadlineExceeded):
			// Idle for a while: the position is the server's
			// postBatchResumeToken.
			if ts, err := s.ResumeToken().ClusterTime(); err == nil {
				t.progress.at(ts)
			}
		default:
			if serr := t.save(ctx, s, true); serr != nil {
				err = errors.Join(err, serr)
			}
			return fmt.Errorf("change stream on %s: %w", t.namespace(), err)
		}
		if time.Since(t.lastSaved) >= saveInterval {
			if err := t.save(ctx, s, false); err != nil {
				return err
			}
		}
	}
}

// print writes ev as one line of Extended JSON.
func (t *tailer) print(ev bson.Raw) error {
	b, err := bson.MarshalExtJSON(ev, t.cfg.canonical, false)
	if err != nil {
		return fmt.Errorf("cannot print an event as Extended JSON: %w", err)
	}
	t.out.Write(b)
	t.out.WriteByte('\n')
	return t.out.Flush()
}

// loadPosition reads the resume file; with a saved position it sets
// startAfter (which also goes on after an invalidate) and reports true.
func (t *tailer) loadPosition(ctx context.Context, csOpts *options.ChangeStreamOptionsBuilder) (bool, error) {
	if t.cfg.resumeFile == "" {
		return false, nil
	}
	store, err := stream.NewFileStore(filepath.Dir(t.cfg.resumeFile))
	if err != nil {
		return false, err
	}
	t.store = store
	t.name = strings.TrimSuffix(filepath.Base(t.cfg.resumeFile), checkpointSuffix)
	cp, err := store.Load(ctx, t.name)
	switch {
	case errors.Is(err, stream.ErrNoCheckpoint):
		return false, nil
	case err != nil:
		return false, err
	}
	t.saved = cp.Token
	csOpts.SetStartAfter(cp.Token.Raw())
	if !t.cfg.since.IsZero() {
		fmt.Fprintf(t.errw, "changetail: resuming from %s; -since applies only to a run without a saved position\n", t.cfg.resumeFile)
	}
	return true, nil
}

// save writes the stream's resume token to the resume file when it changed.
// Without force it is throttled by the caller to saveInterval.
func (t *tailer) save(ctx context.Context, s *stream.Stream[bson.Raw], force bool) error {
	t.lastSaved = time.Now()
	if t.store == nil {
		return nil
	}
	tok := s.ResumeToken()
	if tok.IsZero() || tok.Equal(t.saved) {
		return nil
	}
	cp := stream.Checkpoint{Token: tok}
	if ts, err := tok.ClusterTime(); err == nil {
		cp.ClusterTime = ts
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.store.Save(sctx, t.name, cp); err != nil {
		return fmt.Errorf("save the position to %s: %w", t.cfg.resumeFile, err)
	}
	t.saved = tok
	return nil
}

func (t *tailer) namespace() string {
	if t.cfg.coll == "" {
		return t.cfg.db
	}
	return t.cfg.db + "." + t.cfg.coll
}
