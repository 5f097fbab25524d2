package stream_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
)

func newFileStore(t *testing.T) (*stream.FileStore, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs, dir
}

func TestFileStoreFile(t *testing.T) {
	fs, dir := newFileStore(t)
	ctx := context.Background()
	cp := sampleCheckpoint(t, realServerToken, time.Nanosecond)
	if err := fs.Save(ctx, "orders", cp); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "orders.checkpoint.json")
	if got, err := fs.Path("orders"); err != nil || got != path {
		t.Errorf("Path = %q, %v; want %q", got, err, path)
	}

	t.Run("mode 0600", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("Windows has no Unix file modes")
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("documented format", func(t *testing.T) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("file is not JSON: %v\n%s", err, data)
		}
		want := map[string]any{
			"format":      "go-changestream checkpoint",
			"version":     float64(1),
			"stream":      "orders",
			"token":       realServerToken,
			"clusterTime": map[string]any{"t": float64(1680529005), "i": float64(1)},
			"wallTime":    "2023-04-03T13:36:45.123456789Z",
			"updatedAt":   "2023-04-03T11:36:46.987654321Z",
		}
		if len(doc) != len(want) {
			t.Errorf("file has keys %v, want %v", doc, want)
		}
		for k, v := range want {
			if got, _ := json.Marshal(doc[k]); string(got) != mustJSON(t, v) {
				t.Errorf("%s = %s, want %s", k, got, mustJSON(t, v))
			}
		}
	})

	t.Run("no temporary file is left", func(t *testing.T) {
		for range 3 {
			if err := fs.Save(ctx, "orders", cp); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "orders.checkpoint.json" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("directory holds %v, want only orders.checkpoint.json", names)
		}
	})

	t.Run("a temporary file left by a crash is ignored", func(t *testing.T) {
		junk := filepath.Join(dir, ".orders.checkpoint.json.123456.tmp")
		if err := os.WriteFile(junk, []byte(`{"format":"go-changestream checkpo`), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := fs.Load(ctx, "orders")
		if err != nil || !checkpointsEqual(got, cp) {
			t.Errorf("Load = %s, %v; want the saved checkpoint", fmtCheckpoint(got), err)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// validFile returns the contents Save writes for stream "orders".
func validFile(t *testing.T) string {
	t.Helper()
	fs, dir := newFileStore(t)
	if err := fs.Save(context.Background(), "orders", sampleCheckpoint(t, realServerToken, time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "orders.checkpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFileStoreCorruptFiles(t *testing.T) {
	valid := validFile(t)
	edit := func(old, new string) string {
		if !strings.Contains(valid, old) {
			t.Fatalf("the valid file has no %q:\n%s", old, valid)
		}
		return strings.Replace(valid, old, new, 1)
	}
	tests := []struct {
		name string
		data string
		want string // a substring of the cause
	}{
		{"empty file", "", "empty"},
		{"only white space", " \n", "empty"},
		{"truncated", valid[:len(valid)/2], "not valid JSON"},
		{"cut before the closing brace", strings.TrimRight(valid, "}\n"), "not valid JSON"},
		{"binary garbage", "\x00\x01\x02\xff", "not valid JSON"},
		{"foreign JSON object", `{"name":"orders","offset":42}`, "not a checkpoint file"},
		{"foreign JSON array", `[1,2,3]`, "not an object"},
		{"JSON string", `"82642AD66D00000001"`, "not an object"},
		{"JSON null", `null`, "format marker is missing"},
		{"bare token text", realServerToken, "not valid JSON"},
		{"another format marker", edit(`"go-changestream checkpoint"`, `"other checkpoint"`), "format marker"},
		{"newer version", edit(`"version": 1`, `"version": 3`), "newer than this library reads"},
		{"version 2 without identity", edit(`"version": 1`, `"version": 2`), "identity of a version 2 file is missing"},
		{"version zero", edit(`"version": 1`, `"version": 0`), "format version is 0"},
		{"version as text", edit(`"version": 1`, `"version": "1"`), "format version"},
		{"version 1.0", edit(`"version": 1`, `"version": 1.0`), "bad checkpoint"},
		{"another stream", edit(`"stream": "orders"`, `"stream": "invoices"`), `stream "invoices"`},
		{"empty token", edit(`"token": "`+realServerToken+`"`, `"token": ""`), "token is missing"},
		{"token not hex", edit(`"token": "82`, `"token": "ZZ`), "not hex"},
		{"token of odd length", edit(realServerToken, realServerToken+"0"), "even number"},
		{"token not a string", edit(`"token": "`+realServerToken+`"`, `"token": {"_data": "82"}`), "bad checkpoint"},
		{"cluster time missing", with(t, valid, "clusterTime", nil, true), "cluster time is missing"},
		{"cluster time null", with(t, valid, "clusterTime", nil, false), "cluster time is missing"},
		{"cluster time without i", with(t, valid, "clusterTime", map[string]any{"t": 1}, false), "incomplete"},
		{"cluster time with another field", edit(`"i": 1`, `"j": 1`), "unknown field"},
		{"cluster time as a number", with(t, valid, "clusterTime", 7, false), "bad checkpoint"},
		{"token missing", with(t, valid, "token", nil, true), "token is missing"},
		{"stream missing", with(t, valid, "stream", nil, true), `stream ""`},
		{"format marker missing", with(t, valid, "format", nil, true), "format marker is missing"},
		{"version missing", with(t, valid, "version", nil, true), "format version is missing"},
		{"cluster time negative", edit(`"i": 1`, `"i": -1`), "bad checkpoint"},
		{"cluster time too large", edit(`"i": 1`, `"i": 4294967296`), "bad checkpoint"},
		{"wall time not a time", edit(`"wallTime": "2023`, `"wallTime": "yesterday 2023`), "bad wallTime"},
		{"updatedAt missing", with(t, valid, "updatedAt", nil, true), "updatedAt is missing"},
		{"updatedAt empty", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": ""`), "updatedAt is missing"},
		{"updatedAt zero", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": "0001-01-01T00:00:00Z"`), "zero time"},
		{"unknown field", edit(`"stream"`, `"extra": true, "stream"`), "unknown field"},
		{"data after the object", valid + `{}`, "not valid JSON"},
		// Found by FuzzFileStoreReader: files the writer never produces,
		// which the reader took and Save then refused or wrote otherwise.
		{"updatedAt in year 0 with a one-digit hour", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": "0000-01-01T1:00:00Z"`), "bad updatedAt"},
		{"updatedAt in year 0 by its offset", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": "0001-01-01T00:30:00+01:00"`), "bad updatedAt"},
		{"updatedAt with an offset", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": "2023-04-03T13:36:46.987654321+02:00"`), "not in the form this library writes"},
		{"updatedAt with trailing zeros", edit(`"updatedAt": "2023-04-03T11:36:46.987654321Z"`, `"updatedAt": "2023-04-03T11:36:46.9876543210Z"`), "bad updatedAt"},
		{"wallTime null", edit(`"wallTime": "2023-04-03T13:36:45.123456789Z"`, `"wallTime": null`), "bad wallTime"},
		{"format key in the wrong case", edit(`"format"`, `"formAt"`), "unknown field \"formAt\""},
		{"stream key in the wrong case", edit(`"stream"`, `"streAm"`), "unknown field \"streAm\""},
		{"cluster time key in the wrong case", edit(`"t": `, `"T": `), "unknown field \"T\""},
		{"a key twice", edit(`"stream": "orders"`, `"stream": "invoices", "stream": "orders"`), "appears twice"},
		{"token in the bson: form where the writer writes hex", edit(`"token": "`+realServerToken+`"`, `"token": "bson:`+base64Of(t, realServerToken)+`"`), "not in the form this library writes"},
		{"too large", valid + strings.Repeat(" ", 1<<20), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, dir := newFileStore(t)
			path := filepath.Join(dir, "orders.checkpoint.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			cp, err := fs.Load(context.Background(), "orders")
			if err == nil {
				t.Fatalf("Load of a bad file succeeded: %s", fmtCheckpoint(cp))
			}
			var ce *stream.CorruptCheckpointError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v (%T), want a *CorruptCheckpointError", err, err)
			}
			if ce.Source != path || ce.Stream != "orders" || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s and stream orders", err, path)
			}
			if !strings.Contains(ce.Err.Error(), tt.want) {
				t.Errorf("cause = %q, want it to contain %q", ce.Err, tt.want)
			}
			if errors.Is(err, stream.ErrNoCheckpoint) {
				t.Errorf("a bad file must not look like a missing checkpoint")
			}
			if !cp.Token.IsZero() {
				t.Errorf("a failed Load returned a token")
			}
		})
	}
}

// base64Of returns the base64 of the BSON form of the token text tok.
func base64Of(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := stream.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(parsed.Raw())
}

// with returns the JSON object data with key set to v, or removed.
func with(t *testing.T, data, key string, v any, remove bool) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatal(err)
	}
	if remove {
		delete(doc, key)
	} else {
		doc[key] = v
	}
	return mustJSON(t, doc)
}

func TestFileStoreNames(t *testing.T) {
	fs, _ := newFileStore(t)
	ctx := context.Background()
	cp := sampleCheckpoint(t, realServerToken, time.Nanosecond)
	for _, name := range []string{"orders", "Orders.v2", "a_b-c.1", "x"} {
		if err := fs.Save(ctx, name, cp); err != nil {
			t.Errorf("Save(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"../escape", "a/b", `a\b`, ".hidden", "..", "a b", "caf\u00e9", "a:b", "*"} {
		t.Run(name, func(t *testing.T) {
			if err := fs.Save(ctx, name, cp); !errors.Is(err, stream.ErrInvalidStreamName) {
				t.Errorf("Save(%q) = %v, want ErrInvalidStreamName", name, err)
			}
			if _, err := fs.Load(ctx, name); !errors.Is(err, stream.ErrInvalidStreamName) {
				t.Errorf("Load(%q) = %v, want ErrInvalidStreamName", name, err)
			}
			if _, err := fs.Path(name); !errors.Is(err, stream.ErrInvalidStreamName) {
				t.Errorf("Path(%q) = %v, want ErrInvalidStreamName", name, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(fs.Dir()), "escape.checkpoint.json")); err == nil {
		t.Errorf("a name escaped the directory")
	}
}

func TestNewFileStore(t *testing.T) {
	t.Run("creates a missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		fs, err := stream.NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fs.Dir() != dir {
			t.Errorf("Dir = %q, want %q", fs.Dir(), dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("directory not created: %v", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, err := stream.NewFileStore(""); err == nil {
			t.Error("NewFileStore(\"\") succeeded")
		}
	})
	t.Run("a file, not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.NewFileStore(file); err == nil {
			t.Error("NewFileStore on a file succeeded")
		}
	})
	t.Run("zero FileStore", func(t *testing.T) {
		var fs stream.FileStore
		if _, err := fs.Load(context.Background(), "orders"); err == nil || errors.Is(err, stream.ErrNoCheckpoint) {
			t.Errorf("Load on a zero FileStore = %v, want an error", err)
		}
		if err := fs.Save(context.Background(), "orders", sampleCheckpoint(t, realServerToken, time.Nanosecond)); err == nil {
			t.Error("Save on a zero FileStore succeeded")
		}
	})
}

func TestFileStoreFailures(t *testing.T) {
	ctx := context.Background()
	cp := sampleCheckpoint(t, realServerToken, time.Nanosecond)

	t.Run("a failed Save leaves no temporary file", func(t *testing.T) {
		fs, dir := newFileStore(t)
		// A directory where the checkpoint file should be makes the rename fail.
		if err := os.Mkdir(filepath.Join(dir, "orders.checkpoint.json"), 0o700); err != nil {
			t.Fatal(err)
		}
		err := fs.Save(ctx, "orders", cp)
		if err == nil || !strings.Contains(err.Error(), "orders.checkpoint.json") {
			t.Fatalf("Save = %v, want an error naming the file", err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries after the failed Save, want 1", len(entries))
		}
		// Load of a path that is a directory is an error, not "no checkpoint".
		if _, err := fs.Load(ctx, "orders"); err == nil || errors.Is(err, stream.ErrNoCheckpoint) {
			t.Errorf("Load = %v, want an error", err)
		}
	})

	t.Run("times outside years 1 to 9999", func(t *testing.T) {
		fs, _ := newFileStore(t)
		bad := cp
		bad.WallTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := fs.Save(ctx, "orders", bad); err == nil {
			t.Errorf("Save of year 10000 succeeded")
		}
		if _, err := fs.Load(ctx, "orders"); !errors.Is(err, stream.ErrNoCheckpoint) {
			t.Errorf("Load after the refused Save = %v, want ErrNoCheckpoint", err)
		}
	})

	t.Run("the directory was removed", func(t *testing.T) {
		fs, dir := newFileStore(t)
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := fs.Save(ctx, "orders", cp); err == nil {
			t.Errorf("Save into a removed directory succeeded")
		}
	})
}

// TestFileStoreRestart is the use the store exists for: a second process
// (a second FileStore on the same directory) loads what the first saved.
func TestFileStoreRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	cp := sampleCheckpoint(t, realServerToken, time.Nanosecond)
	if err := first.Save(ctx, "orders", cp); err != nil {
		t.Fatal(err)
	}
	second, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := second.Load(ctx, "orders")
	if err != nil || !checkpointsEqual(got, cp) {
		t.Fatalf("Load = %s, %v; want %s", fmtCheckpoint(got), err, fmtCheckpoint(cp))
	}
	if ct, _ := got.Token.ClusterTime(); ct != got.ClusterTime {
		t.Errorf("token cluster time %v, checkpoint %v", ct, got.ClusterTime)
	}
}
