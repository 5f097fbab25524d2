package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// FileStore is a TokenStore that keeps each stream's checkpoint in its own
// file of one directory: the checkpoint of stream "orders" is the file
// "orders.checkpoint.json". Create one with NewFileStore; a FileStore is
// safe for concurrent use, also by several processes sharing the directory
// (the last Save wins).
//
// One consumer at a time: a Stream with a FileStore holds an exclusive OS
// file lock (flock) on "orders.checkpoint.lock" from Watch to Close, so
// that a second Watch of the same name, in another process or in this one,
// fails at once with an error wrapping ErrStreamInUse. The operating system
// releases the lock when the process ends, also when it is killed, so a
// crash leaves no stale lock. The lock is advisory: it binds Streams, not
// Load and Save called directly. Locks are taken on Linux, macOS and the
// BSDs; elsewhere (Windows) Watch takes none. flock over NFS depends on the
// NFS version and client; keep the directory on a local file system.
//
// Save replaces the file atomically: it writes a temporary file in the same
// directory, ".orders.checkpoint.json.<pid>-<random>.tmp" with the process
// id of the writer, syncs it to disk, renames it over the checkpoint file
// and syncs the directory, so that after a crash the file holds either the
// previous or the new checkpoint, never a mix. Files are created with mode
// 0600. A crash may leave the temporary file behind; NewFileStore removes
// such files: those of this naming whose process no longer runs, and, where
// the system cannot tell (Windows) or the name carries no process id, those
// older than ten minutes. It never touches any other file.
//
// The file is JSON in a versioned, self-describing format:
//
//	{
//	  "format": "go-changestream checkpoint",
//	  "version": 2,
//	  "stream": "orders",
//	  "token": "82642AD66D000000012B022C0100296E5A1004...",
//	  "clusterTime": {"t": 1680529005, "i": 1},
//	  "wallTime": "2023-04-03T13:36:45.123Z",
//	  "updatedAt": "2023-04-03T13:36:46.001234567Z",
//	  "identity": {"v": 1, "target": "collection shop.orders", "fingerprint": "v1:3f0a..."}
//	}
//
// token is the Token's text form (Token.String); wallTime is omitted when
// zero; times are RFC 3339 in UTC, in years 1 to 9999. identity is the
// checkpoint's Identity; a checkpoint with the zero Identity is written as
// version 1, without it, and version 1 files (written before identities
// existed) are read as checkpoints of unknown identity. A checkpoint of a
// snapshot under way (Checkpoint.Snapshot) has one more key, a versioned
// record of its own with every key present:
//
//	"snapshot": {"version": 1, "db": "shop", "collection": "orders",
//	             "lastID": "<base64 of the BSON document {_id: <last _id>}>", "copied": 1200}
//
// Load accepts exactly
// what Save writes, whatever the JSON layout (white space, key order): keys
// spelt as above (they are case-sensitive), each once, and every value in
// the form Save writes it. Load reports a missing file as
// ErrNoCheckpoint, and a file that is truncated, damaged, written by another
// program or by a newer version of this format, or that holds another
// stream's checkpoint, as a *CorruptCheckpointError naming the file.
//
// Stream names for a FileStore must be safe file names: ASCII letters,
// digits, '.', '_' and '-', not starting with '.', at most MaxStreamNameLen
// bytes. On a case-insensitive file system names that differ only in case
// share a file; Load then reports the other stream's checkpoint as an error
// rather than using it.
type FileStore struct {
	dir string
}

const (
	// checkpointFormat is the format marker of a checkpoint file.
	checkpointFormat = "go-changestream checkpoint"
	// checkpointVersion is the newest format version this package writes
	// and reads: 2 adds "identity" to version 1.
	checkpointVersion = 2
	// checkpointSuffix ends the name of every checkpoint file.
	checkpointSuffix = ".checkpoint.json"
	// lockSuffix ends the name of every lock file.
	lockSuffix = ".checkpoint.lock"
	// maxCheckpointFile bounds how much of a file Load reads; a checkpoint
	// is a few hundred bytes.
	maxCheckpointFile = 1 << 20
)

// NewFileStore returns a FileStore keeping its files in dir. It creates dir
// (mode 0700) when it does not exist, and fails when dir is empty or is not
// a directory. It removes the temporary files that Saves of crashed
// processes left in dir (see FileStore), and nothing else.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("changestream: FileStore directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("changestream: FileStore directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("changestream: FileStore directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("changestream: FileStore directory %s is not a directory", dir)
	}
	removeStaleTemps(dir) // store_file_tmp.go
	return &FileStore{dir: dir}, nil
}

// Dir returns the directory the store keeps its files in.
func (f *FileStore) Dir() string { return f.dir }

// Path returns the file that holds the checkpoint of stream name, or an
// error wrapping ErrInvalidStreamName when name is not a safe file name.
func (f *FileStore) Path(name string) (string, error) {
	if f == nil || f.dir == "" {
		return "", errors.New("changestream: FileStore used without NewFileStore")
	}
	if err := checkFileStreamName(name); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, name+checkpointSuffix), nil
}

// lockPath returns the lock file of stream name.
func (f *FileStore) lockPath(name string) (string, error) {
	if _, err := f.Path(name); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, name+lockSuffix), nil
}

// checkFileStreamName validates name as a FileStore stream name.
func checkFileStreamName(name string) error {
	if err := checkStreamName(name); err != nil {
		return err
	}
	if name[0] == '.' {
		return fmt.Errorf("%w %q: a FileStore name must not start with '.'", ErrInvalidStreamName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: a FileStore name may hold only ASCII letters, digits, '.', '_' and '-'", ErrInvalidStreamName, name)
		}
	}
	return nil
}

// Load reads the checkpoint of stream name. A missing file gives
// ErrNoCheckpoint; an unreadable one a *CorruptCheckpointError naming it.
func (f *FileStore) Load(ctx context.Context, name string) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	path, err := f.Path(name)
	if err != nil {
		return Checkpoint{}, err
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNoCheckpoint
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("changestream: load checkpoint: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxCheckpointFile+1))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("changestream: load checkpoint: read %s: %w", path, err)
	}
	cp, err := decodeCheckpointFile(name, data)
	if err != nil {
		return Checkpoint{}, &CorruptCheckpointError{Stream: name, Source: path, Err: err}
	}
	return cp, nil
}

// Save writes cp as the checkpoint of stream name, atomically.
func (f *FileStore) Save(ctx context.Context, name string, cp Checkpoint) (err error) {
	cp, err = checkSave(ctx, name, cp)
	if err != nil {
		return err
	}
	path, err := f.Path(name)
	if err != nil {
		return err
	}
	data, err := encodeCheckpointFile(name, cp)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.dir, tempPattern(name))
	if err != nil {
		return fmt.Errorf("changestream: save checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("changestream: save checkpoint %s: %w", path, err)
		}
	}()
	if err = tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	// A Save whose context ended must not replace the checkpoint.
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(f.dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync a directory;
// its renames are journaled by NTFS.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkpointFile is the JSON form of a checkpoint file, version 1.
type checkpointFile struct {
	Format      string            `json:"format"`
	Version     int               `json:"version"`
	Stream      string            `json:"stream"`
	Token       string            `json:"token"`
	ClusterTime *checkpointFileTS `json:"clusterTime"`
	WallTime    string            `json:"wallTime,omitempty"`
	UpdatedAt   string            `json:"updatedAt"`
	Snapshot    *snapshotFile     `json:"snapshot,omitempty"`
	Identity    *checkpointFileID `json:"identity,omitempty"`
}

// checkpointFileID is the Identity in a checkpoint file, version 2.
type checkpointFileID struct {
	V           *int    `json:"v"`
	Target      *string `json:"target"`
	Fingerprint *string `json:"fingerprint"`
}

// checkpointFileTS is a bson.Timestamp in a checkpoint file.
type checkpointFileTS struct {
	T *uint32 `json:"t"`
	I *uint32 `json:"i"`
}

// encodeCheckpointFile returns the file contents for cp.
func encodeCheckpointFile(name string, cp Checkpoint) ([]byte, error) {
	for _, tm := range []time.Time{cp.WallTime, cp.UpdatedAt} {
		if y := tm.UTC().Year(); !tm.IsZero() && (y < 1 || y > 9999) {
			return nil, fmt.Errorf("changestream: checkpoint of stream %q: time %v is outside years 1 to 9999", name, tm)
		}
	}
	t, i := cp.ClusterTime.T, cp.ClusterTime.I
	doc := checkpointFile{
		Format:      checkpointFormat,
		Version:     1,
		Stream:      name,
		Token:       cp.Token.String(),
		ClusterTime: &checkpointFileTS{T: &t, I: &i},
		UpdatedAt:   cp.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	if !cp.WallTime.IsZero() {
		doc.WallTime = cp.WallTime.UTC().Format(time.RFC3339Nano)
	}
	if cp.Snapshot != nil {
		var err error
		if doc.Snapshot, err = snapshotFileOf(cp.Snapshot); err != nil {
			return nil, err
		}
	}
	if !cp.Identity.IsZero() {
		v, target, fp := identityVersion, cp.Identity.Target, cp.Identity.Fingerprint
		doc.Version = 2
		doc.Identity = &checkpointFileID{V: &v, Target: &target, Fingerprint: &fp}
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("changestream: encode checkpoint: %w", err)
	}
	return append(data, '\n'), nil
}

// decodeCheckpointFile parses the contents of the checkpoint file of stream
// name. It never returns a checkpoint without a token: anything it cannot
// read completely is an error.
func decodeCheckpointFile(name string, data []byte) (Checkpoint, error) {
	if len(data) > maxCheckpointFile {
		return Checkpoint{}, fmt.Errorf("larger than %d bytes: not a checkpoint file", maxCheckpointFile)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Checkpoint{}, errors.New("the file is empty")
	}
	if !json.Valid(data) {
		return Checkpoint{}, errors.New("not valid JSON: the file is truncated, damaged or not a checkpoint file")
	}
	// First the marker and version, leniently, so that a foreign JSON file
	// is reported as foreign rather than by its first unknown field.
	var head struct {
		Format  any `json:"format"`
		Version any `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Checkpoint{}, errors.New("not a checkpoint file: the JSON is not an object")
	}
	if head.Format != checkpointFormat {
		return Checkpoint{}, fmt.Errorf("not a checkpoint file: format marker is %s, want %q", describeJSON(head.Format), checkpointFormat)
	}
	if v, ok := head.Version.(float64); !ok || (v != 1 && v != 2) {
		if ok && v > checkpointVersion {
			return Checkpoint{}, fmt.Errorf("format version %v is newer than this library reads (%d)", v, checkpointVersion)
		}
		return Checkpoint{}, fmt.Errorf("format version is %s, want 1 or %d", describeJSON(head.Version), checkpointVersion)
	}

	// encoding/json matches keys regardless of case and lets a repeated
	// key win: check the keys exactly as the writer spells them first.
	fields, err := checkFileKeys(data, fileKeys)
	if err != nil {
		return Checkpoint{}, err
	}
	if ts := fields["clusterTime"]; len(ts) > 0 && ts[0] == '{' {
		if _, err := checkFileKeys(ts, fileTSKeys); err != nil {
			return Checkpoint{}, fmt.Errorf("bad clusterTime: %w", err)
		}
	}
	if id := fields["identity"]; len(id) > 0 && id[0] == '{' {
		if _, err := checkFileKeys(id, fileIDKeys); err != nil {
			return Checkpoint{}, fmt.Errorf("bad identity: %w", err)
		}
	}
	var doc checkpointFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Checkpoint{}, fmt.Errorf("bad checkpoint: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Checkpoint{}, errors.New("bad checkpoint: data after the JSON object")
	}
	if doc.Stream != name {
		return Checkpoint{}, fmt.Errorf("the file holds the checkpoint of stream %q", doc.Stream)
	}
	if doc.Token == "" {
		return Checkpoint{}, errors.New("the token is missing")
	}
	tok, err := ParseToken(doc.Token)
	if err != nil {
		return Checkpoint{}, err
	}
	if tok.String() != doc.Token {
		return Checkpoint{}, fmt.Errorf("the token %q is not in the form this library writes (%q)", abbreviate(doc.Token), abbreviate(tok.String()))
	}
	if doc.ClusterTime == nil || doc.ClusterTime.T == nil || doc.ClusterTime.I == nil {
		return Checkpoint{}, errors.New("the cluster time is missing or incomplete")
	}
	cp := Checkpoint{
		Token:       tok,
		ClusterTime: bson.Timestamp{T: *doc.ClusterTime.T, I: *doc.ClusterTime.I},
	}
	if _, ok := fields["wallTime"]; ok {
		if cp.WallTime, err = parseFileTime(doc.WallTime); err != nil {
			return Checkpoint{}, fmt.Errorf("bad wallTime: %w", err)
		}
	}
	if doc.UpdatedAt == "" {
		return Checkpoint{}, errors.New("updatedAt is missing")
	}
	if cp.UpdatedAt, err = parseFileTime(doc.UpdatedAt); err != nil {
		return Checkpoint{}, fmt.Errorf("bad updatedAt: %w", err)
	}
	if raw, ok := fields["snapshot"]; ok {
		if len(raw) == 0 || raw[0] != '{' {
			return Checkpoint{}, errors.New("bad snapshot record: not a JSON object")
		}
		keys, err := checkFileKeys(raw, fileSnapshotKeys)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("bad snapshot record: %w", err)
		}
		if len(keys) != len(fileSnapshotKeys) {
			return Checkpoint{}, fmt.Errorf("bad snapshot record: it needs every one of the keys %q", fileSnapshotKeys)
		}
		if cp.Snapshot, err = doc.Snapshot.checkpoint(); err != nil {
			return Checkpoint{}, err
		}
	}
	switch {
	case fields["identity"] != nil && doc.Identity == nil:
		return Checkpoint{}, errors.New("the identity is null")
	case doc.Version == 1 && doc.Identity != nil:
		return Checkpoint{}, errors.New("a version 1 file has no identity")
	case doc.Version == 2 && doc.Identity == nil:
		return Checkpoint{}, errors.New("the identity of a version 2 file is missing")
	case doc.Version == 2:
		id := doc.Identity
		if id.V == nil || *id.V != identityVersion {
			return Checkpoint{}, fmt.Errorf("identity version is not %d", identityVersion)
		}
		if id.Target == nil || id.Fingerprint == nil {
			return Checkpoint{}, errors.New("the identity is incomplete")
		}
		cp.Identity = Identity{Target: *id.Target, Fingerprint: *id.Fingerprint}
		if cp.Identity.IsZero() {
			return Checkpoint{}, errors.New("the identity of a version 2 file is empty")
		}
	}
	return cp, nil
}

// The keys of a checkpoint file, of its clusterTime and of its snapshot
// record, as the writer spells them.
var (
	fileKeys         = []string{"format", "version", "stream", "token", "clusterTime", "wallTime", "updatedAt", "identity", "snapshot"}
	fileTSKeys       = []string{"t", "i"}
	fileIDKeys       = []string{"v", "target", "fingerprint"}
	fileSnapshotKeys = []string{"version", "db", "collection", "lastID", "copied"}
)

// checkFileKeys checks the keys of the JSON object data: each one of
// allowed, spelt exactly so, at most once. It returns the raw value of each
// key.
func checkFileKeys(data []byte, allowed []string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad checkpoint: %w", err)
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("bad checkpoint: %w", err)
		}
		switch {
		case !slices.Contains(allowed, key):
			return nil, fmt.Errorf("bad checkpoint: unknown field %q (field names are case-sensitive)", abbreviate(key))
		case fields[key] != nil:
			return nil, fmt.Errorf("bad checkpoint: field %q appears twice", key)
		}
		fields[key] = v
	}
	return fields, nil
}

// parseFileTime reads a time as encodeCheckpointFile writes it: RFC 3339
// in UTC with the fewest fractional digits, in years 1 to 9999, not the
// zero time. Anything else (an offset, a one-digit hour, trailing zeros)
// is refused, so that whatever Load accepts, Save writes back the same.
func parseFileTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	switch {
	case t.IsZero():
		return time.Time{}, fmt.Errorf("%q is the zero time", abbreviate(s))
	case t.Year() < 1 || t.Year() > 9999:
		return time.Time{}, fmt.Errorf("%q is outside years 1 to 9999", abbreviate(s))
	case t.Format(time.RFC3339Nano) != s:
		return time.Time{}, fmt.Errorf("%q is not in the form this library writes (%s)", abbreviate(s), t.Format(time.RFC3339Nano))
	}
	return t, nil
}

// describeJSON shortly describes a decoded JSON value for an error message.
func describeJSON(v any) string {
	switch v := v.(type) {
	case nil:
		return "missing"
	case string:
		return fmt.Sprintf("%q", abbreviate(v))
	case float64:
		return fmt.Sprint(v)
	default:
		return fmt.Sprintf("a JSON %T", v)
	}
}
