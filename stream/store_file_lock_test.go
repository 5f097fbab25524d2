//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package stream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	lockEnvURI = "CHANGESTREAM_LOCK_URI" // set in the child of TestFileStoreLockedByAnotherProcess
	lockEnvDB  = "CHANGESTREAM_LOCK_DB"
	lockEnvDir = "CHANGESTREAM_LOCK_DIR"
)

// A second process watching the same FileStore checkpoint is refused at
// Watch, with an error that says why; when the holder is killed, the OS
// releases the lock and the next Watch succeeds. Within one process a
// second Stream of the same name is refused too, until the first closes.
func TestFileStoreLockedByAnotherProcess(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		uri = f.srv.URI()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreLockChild$")
	cmd.Env = append(os.Environ(), lockEnvURI+"="+uri, lockEnvDB+"="+f.db.Name(), lockEnvDir+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "locked" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("the child ended before it held the lock: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-f.ctx.Done():
		t.Fatal("the child did not report its lock")
	}
	defer stdin.Close()

	fs, err := stream.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := &stream.Options{Store: fs, Name: "orders"}
	_, err = stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
	if !errors.Is(err, stream.ErrStreamInUse) || !strings.Contains(err.Error(), "orders.checkpoint.lock") || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("Watch while another process holds the stream: %v, want ErrStreamInUse naming the lock file", err)
	}

	// SIGKILL: no Close, no cleanup; the OS frees the lock.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
	if err != nil {
		t.Fatalf("Watch after the holder was killed: %v", err)
	}
	f.insert(t, Order{ID: 1})
	nextIDs(t, f, s, 1)
	if _, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o); !errors.Is(err, stream.ErrStreamInUse) {
		t.Fatalf("a second Stream in the same process: %v, want ErrStreamInUse", err)
	}
	if err := s.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
	if err != nil {
		t.Fatalf("Watch after Close: %v", err)
	}
	if err := s2.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	// A failed Watch releases the lock it took.
	bad := &stream.Options{Store: fs, Name: "orders"}
	if _, err := stream.Watch[stream.Event[Order]](f.ctx, f.db.Collection("returns"), nil, bad); !errors.Is(err, stream.ErrCheckpointMismatch) {
		t.Fatalf("Watch of another collection: %v, want ErrCheckpointMismatch", err)
	}
	s3, err := stream.Watch[stream.Event[Order]](f.ctx, f.coll, nil, o)
	if err != nil {
		t.Fatalf("Watch after a failed Watch: %v", err)
	}
	s3.Close(f.ctx)
}

// TestFileStoreLockChild is the child of TestFileStoreLockedByAnotherProcess:
// it watches with the FileStore, says "locked", and holds the stream until
// its stdin closes or it is killed.
func TestFileStoreLockChild(t *testing.T) {
	uri := os.Getenv(lockEnvURI)
	if uri == "" {
		t.Skip("the child process of TestFileStoreLockedByAnotherProcess")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	fs, err := stream.NewFileStore(os.Getenv(lockEnvDir))
	if err != nil {
		t.Fatal(err)
	}
	s, err := stream.Watch[stream.Event[Order]](ctx, client.Database(os.Getenv(lockEnvDB)).Collection("orders"), nil, &stream.Options{Store: fs, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
