package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
		{"negative connection limit", []string{"-addr", "127.0.0.1:0", "-max-conns", "-1"}, 1},
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

// TestNodeDriver runs the official Node.js driver against the command's
// server (testdata/node/smoke.js), so that mongotest is shown to serve a
// driver other than Go's. It needs node and the driver's package: .ci/run
// installs it with npm into testdata/node and sets MONGOTEST_NODE=1; without
// it the test skips, except under CI=true, where it fails.
func TestNodeDriver(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "mongodb"))
	if nodeErr != nil || modErr != nil || os.Getenv("MONGOTEST_NODE") == "" {
		msg := "needs node and the mongodb npm package: run `npm install` in cmd/mongotest/testdata/node and set MONGOTEST_NODE=1 (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	stop := make(chan struct{})
	uri, code := start(t, stop, "-addr", "127.0.0.1:0")
	defer func() {
		close(stop)
		if c := waitCode(t, code); c != 0 {
			t.Errorf("exit code %d", c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "smoke.js", uri)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got struct {
		Ops     []string       `json:"ops"`
		Updated map[string]any `json:"updated"`
		Lookup  map[string]any `json:"lookup"`
		Doc     map[string]any `json:"doc"`
		SetName string         `json:"setName"`
		Token   string         `json:"token"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if len(got.Ops) != 2 || got.Ops[0] != "insert" || got.Ops[1] != "update" {
		t.Errorf("events %v, want [insert update]", got.Ops)
	}
	if got.Updated["qty"] != float64(2) || got.Lookup["qty"] != float64(2) || got.Doc["item"] != "tea" || got.Doc["qty"] != float64(2) {
		t.Errorf("updatedFields %v, updateLookup %v, findOne %v", got.Updated, got.Lookup, got.Doc)
	}
	if got.SetName != "rs0" || got.Token != "string" {
		t.Errorf("setName %q, resume token _data type %q", got.SetName, got.Token)
	}
}

// The standalone server has no authentication: -h says so, and an address
// other than loopback gets a warning on stderr (a loopback one none).
func TestNoAuthenticationNotice(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if c := run([]string{"-h"}, &stdout, &stderr, make(chan struct{})); c != 2 {
		t.Fatalf("-h: exit code %d, want 2", c)
	}
	if !strings.Contains(stderr.String(), "no authentication") {
		t.Errorf("-h does not say the server has no authentication:\n%s", stderr.String())
	}

	tests := []struct {
		name, addr string
		warn       bool
	}{
		{"loopback", "127.0.0.1:0", false},
		{"every interface", "0.0.0.0:0", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stop := make(chan struct{})
			close(stop)
			var stdout, stderr bytes.Buffer
			if c := run([]string{"-addr", tc.addr}, &stdout, &stderr, stop); c != 0 {
				t.Fatalf("exit code %d (stderr %q)", c, stderr.String())
			}
			warned := strings.Contains(stderr.String(), "WARNING") && strings.Contains(stderr.String(), "no authentication")
			if warned != tc.warn {
				t.Errorf("-addr %s: warned %v, want %v (stderr %q)", tc.addr, warned, tc.warn, stderr.String())
			}
		})
	}
}
