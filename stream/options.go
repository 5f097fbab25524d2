package stream

import (
	"log/slog"
)

// Options holds this package's own settings for a Stream. A nil *Options
// means all defaults; so does the zero value of every field.
//
// The driver's change-stream settings (fullDocument, resumeAfter,
// startAfter, batchSize, maxAwaitTime, collation, comment, ...) are not
// here: pass them to Watch as the driver's own options.ChangeStream()
// builder.
type Options struct {
	// Logger receives the stream's log lines: a debug line when the stream
	// opens and ends, a warning when Close could not kill the server cursor
	// of an interrupted call. The zero value (nil) discards them.
	Logger *slog.Logger

	// SplitEvents asks the server to split change events larger than
	// 16 MiB into fragments: the $changeStreamSplitLargeEvent stage is
	// appended to the pipeline, unless its last stage already is that
	// stage. Either way the Stream joins the fragments into the whole
	// event before decoding it, so T never sees a fragment, and its
	// ResumeToken moves only at whole events. The zero value (false)
	// leaves the pipeline as it is; without the stage such an event ends
	// the stream with ErrEventTooLarge.
	SplitEvents bool // split.go

	// DisablePrefetch turns off fetching ahead. By default, when Next or
	// TryNext returns the last event of a batch of several (the stream is
	// behind the writes), the next batch is requested in the background
	// while the caller handles that event: at most one batch ahead, and
	// ResumeToken (and so every checkpoint) still moves only when an event
	// is returned. After a batch of one event nothing is fetched between
	// calls.
	DisablePrefetch bool // prefetch.go
}

// resolve checks the options and fills in defaults. It never modifies the
// caller's struct.
func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}
