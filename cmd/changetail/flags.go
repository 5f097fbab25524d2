package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// config is what the command line asks for.
type config struct {
	uri          string
	db, coll     string
	match        bson.D // nil without -match
	fullDocument string // "" for the server's default
	resumeFile   string
	since        bson.Timestamp // zero without -since
	canonical    bool
	format       *eventFormat // how each event is printed
	limit        int
	embedded     bool
	snapshot     bool // print every existing document first (NoCheckpoint: StartWithSnapshot)
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp is -h or -help: the usage was printed.
var errHelp = errors.New("help requested")

// checkpointSuffix is the end of every FileStore file name.
const checkpointSuffix = ".checkpoint.json"

var fileStreamName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

var fullDocumentModes = []string{"default", "updateLookup", "whenAvailable", "required"}

const usageText = `usage: changetail -uri URI [-db D [-coll C]] [flags]
       changetail -embedded [flags]
Prints a MongoDB change stream as Extended JSON lines on stdout: of the
whole deployment, of database D, or of collection D.C.
`

// parseFlags reads the command line. now is the time -since durations
// count back from.
func parseFlags(args []string, stderr io.Writer, now time.Time) (config, error) {
	var c config
	var match, since, fullDoc, format string
	fs := flag.NewFlagSet("changetail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.uri, "uri", "", "connection string of the deployment (credentials are never printed)")
	fs.StringVar(&c.db, "db", "", "database to watch; without it, the whole deployment (with -embedded: shop)")
	fs.StringVar(&c.coll, "coll", "", "collection of -db to watch; without it, the whole database")
	fs.StringVar(&match, "match", "", "filter on the events, as the Extended JSON of a $match stage's document, e.g. '{\"operationType\":\"insert\"}'")
	fs.StringVar(&fullDoc, "full-document", "", "fullDocument mode: "+strings.Join(fullDocumentModes, ", "))
	fs.StringVar(&c.resumeFile, "resume-file", "", "file (NAME"+checkpointSuffix+") that keeps the position; the next run resumes from it")
	fs.StringVar(&since, "since", "", "start at this time when there is no saved position: RFC 3339 (2024-05-01T10:00:00Z), a duration ago (10m), or a cluster time (1714557600 or 1714557600.3)")
	fs.BoolVar(&c.canonical, "canonical", false, "print canonical Extended JSON (every BSON type explicit) instead of relaxed")
	fs.StringVar(&format, "format", "json", formatHelp())
	fs.IntVar(&c.limit, "limit", 0, "stop after this many events (0: run until interrupted)")
	fs.BoolVar(&c.embedded, "embedded", false, "watch an in-process mongotest server with a sample writer")
	fs.BoolVar(&c.snapshot, "snapshot", false, "without a saved position, print every existing document first (operationType \"snapshot\"), then the changes; a progress bar on a terminal")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageText)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return c, errHelp
		}
		return c, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return c, usagef("unexpected argument %q", fs.Arg(0))
	}

	switch {
	case c.embedded && c.uri != "":
		return c, usagef("-embedded and -uri exclude each other")
	case c.embedded:
		if c.db == "" {
			c.db, c.coll = "shop", "orders"
		}
	case c.uri == "":
		return c, usagef("-uri is required (or -embedded)")
	case c.db == "" && c.coll != "":
		return c, usagef("-coll %q needs -db", c.coll)
	default:
		if err := options.Client().ApplyURI(c.uri).Validate(); err != nil {
			return c, usagef("-uri: %v", err)
		}
	}
	if c.snapshot && since != "" {
		return c, usagef("-snapshot and -since exclude each other: a snapshot fixes its own start point")
	}
	if c.limit < 0 {
		return c, usagef("-limit %d is negative", c.limit)
	}
	if match != "" {
		// null (or any other non-object) would decode as no filter at all.
		if m := strings.TrimSpace(match); !strings.HasPrefix(m, "{") {
			return c, usagef("-match: not a JSON object: %.40q", m)
		}
		var d bson.D
		if err := bson.UnmarshalExtJSON([]byte(match), false, &d); err != nil {
			return c, usagef("-match: not a JSON object: %v", err)
		}
		c.match = d
	}
	switch fullDoc {
	case "", "default":
	case "updateLookup", "whenAvailable", "required":
		c.fullDocument = fullDoc
	default:
		return c, usagef("-full-document %q: want one of %s", fullDoc, strings.Join(fullDocumentModes, ", "))
	}
	f, err := parseFormat(format, c.canonical)
	if err != nil {
		return c, usagef("-format %q: %v", format, err)
	}
	c.format = f
	if c.resumeFile != "" {
		base := filepath.Base(c.resumeFile)
		name, ok := strings.CutSuffix(base, checkpointSuffix)
		if !ok || !fileStreamName.MatchString(name) {
			return c, usagef("-resume-file %q: the file name must be NAME%s, NAME of ASCII letters, digits, '.', '_' or '-'", c.resumeFile, checkpointSuffix)
		}
	}
	if since != "" {
		ts, err := parseSince(since, now)
		if err != nil {
			return c, usagef("-since %q: %v", since, err)
		}
		c.since = ts
	}
	return c, nil
}

// parseSince reads the -since forms into a cluster time.
func parseSince(s string, now time.Time) (bson.Timestamp, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return unixTimestamp(t.Unix())
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return bson.Timestamp{}, errors.New("a negative duration is in the future")
		}
		return unixTimestamp(now.Add(-d).Unix())
	}
	secs, inc, hasInc := strings.Cut(s, ".")
	t, err := strconv.ParseUint(secs, 10, 32)
	if err != nil {
		return bson.Timestamp{}, errors.New("want RFC 3339 (2024-05-01T10:00:00Z), a duration (10m) or a cluster time (1714557600.3)")
	}
	ts := bson.Timestamp{T: uint32(t)}
	if hasInc {
		i, err := strconv.ParseUint(inc, 10, 32)
		if err != nil {
			return bson.Timestamp{}, fmt.Errorf("bad increment %q in the cluster time", inc)
		}
		ts.I = uint32(i)
	}
	return ts, nil
}

func unixTimestamp(secs int64) (bson.Timestamp, error) {
	if secs < 0 || secs > int64(^uint32(0)) {
		return bson.Timestamp{}, errors.New("out of the range of a cluster time")
	}
	return bson.Timestamp{T: uint32(secs)}, nil
}
