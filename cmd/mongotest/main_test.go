package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// start runs the command in the background and returns its URI and a
// channel with its exit code.
func start(t *testing.T, stop chan struct{}, args ...string) (string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(args, pw, io.Discard, stop)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URI: %v", err)
	}
	go io.Copy(io.Discard, pr)
	return strings.TrimSpace(line), code
}

func waitCode(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not exit")
		return -1
	}
}

func TestServesUntilSignalled(t *testing.T) {
	uri, code := start(t, nil, "-addr", "127.0.0.1:0", "-replset", "cmdtest", "-history", "10")
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") || !strings.HasSuffix(uri, "/?replicaSet=cmdtest") {
		t.Fatalf("URI = %q", uri)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	coll := client.Database("cmd").Collection("c")
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if !cs.Next(ctx) {
		t.Fatalf("Next: %v", cs.Err())
	}
	cs.Close(ctx)
	client.Disconnect(ctx)

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if c := waitCode(t, code); c != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", c)
	}
}

func TestBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown flag", []string{"-nope"}, 2},
		{"extra argument", []string{"-addr", "127.0.0.1:0", "extra"}, 2},
		{"negative history", []string{"-addr", "127.0.0.1:0", "-history", "-1"}, 1},
		{"bad address", []string{"-addr", "256.0.0.1:1"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if c := run(tc.args, &stdout, &stderr, make(chan struct{})); c != tc.code {
				t.Fatalf("exit code %d, want %d (stderr %q)", c, tc.code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if stderr.Len() == 0 {
				t.Error("no message on stderr")
			}
		})
	}
}
