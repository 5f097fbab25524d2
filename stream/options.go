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
