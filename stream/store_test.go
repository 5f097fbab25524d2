package stream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// storeTestDB is the database the store and token tests use.
const storeTestDB = "changestream_store_test"

// storeTestClient connects, through the driver over TCP, to the deployment
// named by MONGODB_URI, or else to a mongotest server started for the test.
// A non-nil monitor sees every command the client sends.
func storeTestClient(t *testing.T) *mongo.Client {
	return storeTestClientWith(t, nil)
}

func storeTestClientWith(t *testing.T, monitor *event.CommandMonitor) *mongo.Client {
	t.Helper()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		uri = mongotest.New(t, nil).URI()
	}
	opts := options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second)
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// storeTestCollection returns an empty collection named after the test,
// dropped again when the test ends, so that runs against a real deployment
// start clean.
func storeTestCollection(t *testing.T, client *mongo.Client) *mongo.Collection {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_]+`).ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	coll := client.Database(storeTestDB).Collection(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := coll.Drop(ctx); err != nil {
		t.Fatalf("drop %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = coll.Drop(ctx)
	})
	return coll
}

// storeKinds builds each TokenStore of the package for a test.
var storeKinds = []struct {
	name string
	new  func(t *testing.T) stream.TokenStore
	// precision is how finely the store keeps times.
	precision time.Duration
}{
	{
		name:      "MemoryStore",
		new:       func(t *testing.T) stream.TokenStore { return new(stream.MemoryStore) },
		precision: time.Nanosecond,
	},
	{
		name: "FileStore",
		new: func(t *testing.T) stream.TokenStore {
			fs, err := stream.NewFileStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return fs
		},
		precision: time.Nanosecond,
	},
	{
		name: "CollectionStore",
		new: func(t *testing.T) stream.TokenStore {
			cs, err := stream.NewCollectionStore(storeTestCollection(t, storeTestClient(t)), nil)
			if err != nil {
				t.Fatal(err)
			}
			return cs
		},
		precision: time.Millisecond,
	},
}

// checkpointsEqual compares two checkpoints, times by instant.
func checkpointsEqual(a, b stream.Checkpoint) bool {
	return a.Token.Equal(b.Token) && a.ClusterTime == b.ClusterTime &&
		a.WallTime.Equal(b.WallTime) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func fmtCheckpoint(cp stream.Checkpoint) string {
	return fmt.Sprintf("{Token:%v ClusterTime:%v WallTime:%v UpdatedAt:%v}", cp.Token, cp.ClusterTime, cp.WallTime, cp.UpdatedAt)
}

// sampleCheckpoint returns a checkpoint with every field set, its times
// already at the store's precision.
func sampleCheckpoint(t *testing.T, data string, precision time.Duration) stream.Checkpoint {
	t.Helper()
	tok := mustParse(t, data)
	ct, err := tok.ClusterTime()
	if err != nil {
		t.Fatal(err)
	}
	return stream.Checkpoint{
		Token:       tok,
		ClusterTime: ct,
		WallTime:    time.Date(2023, 4, 3, 13, 36, 45, 123456789, time.UTC).Truncate(precision),
		UpdatedAt:   time.Date(2023, 4, 3, 13, 36, 46, 987654321, time.FixedZone("CEST", 2*3600)).Truncate(precision),
	}
}

func TestStores(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			store := kind.new(t)

			t.Run("missing checkpoint", func(t *testing.T) {
				cp, err := store.Load(ctx, "never-saved")
				if !errors.Is(err, stream.ErrNoCheckpoint) {
					t.Fatalf("Load = %v, want ErrNoCheckpoint", err)
				}
				if !cp.Token.IsZero() || !checkpointsEqual(cp, stream.Checkpoint{}) {
					t.Errorf("Load of a missing checkpoint returned %s", fmtCheckpoint(cp))
				}
			})

			first := sampleCheckpoint(t, realServerToken, kind.precision)
			t.Run("save and load", func(t *testing.T) {
				if err := store.Save(ctx, "orders", first); err != nil {
					t.Fatal(err)
				}
				got, err := store.Load(ctx, "orders")
				if err != nil {
					t.Fatal(err)
				}
				if !checkpointsEqual(got, first) {
					t.Errorf("Load = %s\nwant   %s", fmtCheckpoint(got), fmtCheckpoint(first))
				}
			})

			second := sampleCheckpoint(t, "82642AD66E0000000A2B", kind.precision)
			second.WallTime = time.Time{} // an idle postBatchResumeToken has no wall time
			t.Run("save replaces", func(t *testing.T) {
				if err := store.Save(ctx, "orders", second); err != nil {
					t.Fatal(err)
				}
				got, err := store.Load(ctx, "orders")
				if err != nil {
					t.Fatal(err)
				}
				if !checkpointsEqual(got, second) {
					t.Errorf("Load = %s\nwant   %s", fmtCheckpoint(got), fmtCheckpoint(second))
				}
			})

			t.Run("names are independent", func(t *testing.T) {
				if err := store.Save(ctx, "invoices", first); err != nil {
					t.Fatal(err)
				}
				a, errA := store.Load(ctx, "orders")
				b, errB := store.Load(ctx, "invoices")
				if errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				if !checkpointsEqual(a, second) || !checkpointsEqual(b, first) {
					t.Errorf("orders = %s, invoices = %s", fmtCheckpoint(a), fmtCheckpoint(b))
				}
			})

			t.Run("zero UpdatedAt is filled in", func(t *testing.T) {
				cp := first
				cp.UpdatedAt = time.Time{}
				before := time.Now().Truncate(kind.precision)
				if err := store.Save(ctx, "stamped", cp); err != nil {
					t.Fatal(err)
				}
				after := time.Now()
				got, err := store.Load(ctx, "stamped")
				if err != nil {
					t.Fatal(err)
				}
				if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
					t.Errorf("UpdatedAt = %v, want between %v and %v", got.UpdatedAt, before, after)
				}
			})

			t.Run("a checkpoint without a token is refused", func(t *testing.T) {
				cp := first
				cp.Token = stream.Token{}
				if err := store.Save(ctx, "orders", cp); err == nil || !strings.Contains(err.Error(), "no token") {
					t.Fatalf("Save without a token = %v, want an error", err)
				}
				got, err := store.Load(ctx, "orders")
				if err != nil || !checkpointsEqual(got, second) {
					t.Errorf("after the refused Save, Load = %s, %v; want the previous checkpoint", fmtCheckpoint(got), err)
				}
			})

			for _, bad := range []struct{ name, stream string }{
				{"empty", ""},
				{"too long", strings.Repeat("n", stream.MaxStreamNameLen+1)},
				{"not UTF-8", "orders\xff"},
				{"control character", "orders\n"},
				{"NUL", "a\x00b"},
			} {
				t.Run("invalid name "+bad.name, func(t *testing.T) {
					if _, err := store.Load(ctx, bad.stream); !errors.Is(err, stream.ErrInvalidStreamName) {
						t.Errorf("Load = %v, want ErrInvalidStreamName", err)
					}
					if err := store.Save(ctx, bad.stream, first); !errors.Is(err, stream.ErrInvalidStreamName) {
						t.Errorf("Save = %v, want ErrInvalidStreamName", err)
					}
				})
			}

			t.Run("longest name", func(t *testing.T) {
				name := strings.Repeat("n", stream.MaxStreamNameLen)
				if err := store.Save(ctx, name, first); err != nil {
					t.Fatal(err)
				}
				if _, err := store.Load(ctx, name); err != nil {
					t.Fatal(err)
				}
			})

			t.Run("cancelled context", func(t *testing.T) {
				cctx, ccancel := context.WithCancel(ctx)
				ccancel()
				if _, err := store.Load(cctx, "orders"); !errors.Is(err, context.Canceled) {
					t.Errorf("Load = %v, want context.Canceled", err)
				}
				if err := store.Save(cctx, "orders", first); !errors.Is(err, context.Canceled) {
					t.Errorf("Save = %v, want context.Canceled", err)
				}
				got, err := store.Load(ctx, "orders")
				if err != nil || !checkpointsEqual(got, second) {
					t.Errorf("after the cancelled Save, Load = %s, %v; want the previous checkpoint", fmtCheckpoint(got), err)
				}
			})

			t.Run("concurrent use", func(t *testing.T) {
				cps := []stream.Checkpoint{first, second}
				var wg sync.WaitGroup
				errs := make(chan error, 40)
				for i := range 4 {
					wg.Go(func() {
						for j := range 5 {
							if err := store.Save(ctx, "busy", cps[(i+j)%2]); err != nil {
								errs <- err
							}
							if _, err := store.Load(ctx, "busy"); err != nil && !errors.Is(err, stream.ErrNoCheckpoint) {
								errs <- err
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				got, err := store.Load(ctx, "busy")
				if err != nil {
					t.Fatal(err)
				}
				if !checkpointsEqual(got, first) && !checkpointsEqual(got, second) {
					t.Errorf("after concurrent saves, Load = %s, which no Save wrote", fmtCheckpoint(got))
				}
			})
		})
	}
}

func TestMemoryStoreZeroValue(t *testing.T) {
	var m stream.MemoryStore
	ctx := context.Background()
	if _, err := m.Load(ctx, "a"); !errors.Is(err, stream.ErrNoCheckpoint) {
		t.Fatalf("Load on the zero MemoryStore = %v, want ErrNoCheckpoint", err)
	}
	cp := stream.Checkpoint{Token: mustParse(t, realServerToken)}
	if err := m.Save(ctx, "a", cp); err != nil {
		t.Fatal(err)
	}
	got, err := m.Load(ctx, "a")
	if err != nil || !got.Token.Equal(cp.Token) {
		t.Fatalf("Load = %s, %v", fmtCheckpoint(got), err)
	}
}

// Compile-time checks that every store is a TokenStore.
var (
	_ stream.TokenStore = (*stream.MemoryStore)(nil)
	_ stream.TokenStore = (*stream.FileStore)(nil)
	_ stream.TokenStore = (*stream.CollectionStore)(nil)
)

func TestCorruptCheckpointError(t *testing.T) {
	cause := errors.New("the token is missing")
	err := error(&stream.CorruptCheckpointError{Stream: "orders", Source: "/var/lib/app/orders.checkpoint.json", Err: cause})
	want := `changestream: checkpoint of stream "orders" in /var/lib/app/orders.checkpoint.json is unreadable: the token is missing`
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is does not reach the cause")
	}
	var ce *stream.CorruptCheckpointError
	if !errors.As(fmt.Errorf("wrapped: %w", err), &ce) || ce.Stream != "orders" {
		t.Errorf("errors.As failed")
	}
	if errors.Is(err, stream.ErrNoCheckpoint) {
		t.Errorf("a corrupt checkpoint must not look like a missing one")
	}
}
