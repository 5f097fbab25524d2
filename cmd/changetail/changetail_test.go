package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/internal/faultproxy"
	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// deployment is a mongotest server with a client, for changetail to watch.
type deployment struct {
	srv    *mongotest.Server
	orders *mongo.Collection
	ctx    context.Context
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	srv := mongotest.New(t, nil)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(func() {
		client.Disconnect(context.Background())
		cancel()
	})
	return &deployment{srv: srv, orders: client.Database("shop").Collection("orders"), ctx: ctx}
}

// since returns a -since value for "from now on".
func (d *deployment) since() string {
	ts := d.srv.ClusterTime()
	return fmt.Sprintf("%d.%d", ts.T, ts.I+1)
}

func (d *deployment) insert(t *testing.T, ids ...int) {
	t.Helper()
	for _, id := range ids {
		doc := bson.D{{Key: "_id", Value: id}, {Key: "qty", Value: int64(id)}, {Key: "at", Value: time.UnixMilli(1714557600000).UTC()}}
		if _, err := d.orders.InsertOne(d.ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
}

// runTail runs changetail in-process and returns its status and output.
func runTail(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// events parses stdout as one Extended JSON document a line.
func events(t *testing.T, stdout string, canonical bool) []bson.Raw {
	t.Helper()
	var evs []bson.Raw
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 32<<20)
	for sc.Scan() {
		var doc bson.Raw
		if err := bson.UnmarshalExtJSON(sc.Bytes(), canonical, &doc); err != nil {
			t.Fatalf("line %d is not Extended JSON: %v\n%s", len(evs)+1, err, sc.Text())
		}
		if _, ok := doc.Lookup("_id").DocumentOK(); !ok {
			t.Fatalf("line %d is not a change event: %s", len(evs)+1, sc.Text())
		}
		evs = append(evs, doc)
	}
	return evs
}

func docIDs(evs []bson.Raw) []int32 {
	var ids []int32
	for _, ev := range evs {
		ids = append(ids, ev.Lookup("documentKey", "_id").Int32())
	}
	return ids
}

func equalIDs(got []int32, want ...int32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestExtendedJSONLines: each event is one line of Extended JSON, relaxed
// by default and canonical with -canonical.
func TestExtendedJSONLines(t *testing.T) {
	tests := []struct {
		name      string
		flags     []string
		canonical bool
		want      string // appears in the output
		wantNot   string
	}{
		{"relaxed", nil, false, `"qty":2`, `$numberLong`},
		{"canonical", []string{"-canonical"}, true, `"qty":{"$numberLong":"2"}`, `"qty":2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment(t)
			since := d.since()
			d.insert(t, 1, 2, 3)
			args := append([]string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-since", since, "-limit", "3"}, tt.flags...)
			code, stdout, stderr := runTail(d.ctx, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			evs := events(t, stdout, tt.canonical)
			if ids := docIDs(evs); !equalIDs(ids, 1, 2, 3) {
				t.Errorf("events for %v, want [1 2 3]", ids)
			}
			if !strings.Contains(stdout, tt.want) || strings.Contains(stdout, tt.wantNot) {
				t.Errorf("output should hold %s and not %s:\n%s", tt.want, tt.wantNot, stdout)
			}
			if op := evs[0].Lookup("operationType").StringValue(); op != "insert" {
				t.Errorf("operationType %q", op)
			}
		})
	}
}

// TestMatchAndFullDocument: -match filters the events and -full-document
// reaches the server.
func TestMatchAndFullDocument(t *testing.T) {
	d := newDeployment(t)
	since := d.since()
	d.insert(t, 1)
	if _, err := d.orders.UpdateByID(d.ctx, 1, bson.D{{Key: "$set", Value: bson.D{{Key: "qty", Value: 9}}}}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runTail(d.ctx, "-uri", d.srv.URI(), "-db", "shop", "-since", since, "-limit", "1",
		"-match", `{"operationType": "update"}`, "-full-document", "updateLookup")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	evs := events(t, stdout, false)
	if len(evs) != 1 || evs[0].Lookup("operationType").StringValue() != "update" {
		t.Fatalf("want one update event, got:\n%s", stdout)
	}
	if qty := evs[0].Lookup("fullDocument", "qty").Int32(); qty != 9 {
		t.Errorf("fullDocument.qty = %d, want 9 (updateLookup)", qty)
	}
}

// lineWriter signals every line written to it.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for range bytes.Count(p, []byte("\n")) {
		w.lines <- struct{}{}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestResumeFile: the position is saved when the limit is reached and when
// the run is interrupted, and the next run goes on from it: no event is
// printed twice, none is skipped.
func TestResumeFile(t *testing.T) {
	d := newDeployment(t)
	file := filepath.Join(t.TempDir(), "state", "orders.checkpoint.json")
	base := []string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-resume-file", file}
	since := d.since()

	// Run 1: from -since, three events, then the limit.
	d.insert(t, 1, 2, 3)
	code, stdout, stderr := runTail(d.ctx, append(base, "-since", since, "-limit", "3")...)
	if code != 0 {
		t.Fatalf("run 1: exit %d: %s", code, stderr)
	}
	if ids := docIDs(events(t, stdout, false)); !equalIDs(ids, 1, 2, 3) {
		t.Fatalf("run 1 printed %v, want [1 2 3]", ids)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatalf("run 1 wrote no resume file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("resume file mode %v, want 0600", info.Mode().Perm())
	}

	// Run 2: resumes after event 3, although -since asks for earlier.
	d.insert(t, 4, 5)
	code, stdout, stderr = runTail(d.ctx, append(base, "-since", since, "-limit", "2")...)
	if code != 0 {
		t.Fatalf("run 2: exit %d: %s", code, stderr)
	}
	if ids := docIDs(events(t, stdout, false)); !equalIDs(ids, 4, 5) {
		t.Fatalf("run 2 printed %v, want [4 5]", ids)
	}
	if !strings.Contains(stderr, "-since applies only") {
		t.Errorf("run 2 did not say that it ignored -since: %q", stderr)
	}

	// Run 3: interrupted (Ctrl-C) after event 6, while waiting for more.
	ctx, interrupt := context.WithCancel(d.ctx)
	defer interrupt()
	out := &lineWriter{lines: make(chan struct{}, 10)}
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- run(ctx, base, out, &errb) }()
	d.insert(t, 6)
	select {
	case <-out.lines:
	case code := <-done:
		t.Fatalf("run 3 ended with %d before its event: %s", code, errb.String())
	case <-d.ctx.Done():
		t.Fatal("run 3 printed nothing")
	}
	interrupt()
	if code := <-done; code != 0 {
		t.Fatalf("run 3: exit %d after the interrupt: %s", code, errb.String())
	}
	if ids := docIDs(events(t, out.String(), false)); !equalIDs(ids, 6) {
		t.Fatalf("run 3 printed %v, want [6]", ids)
	}
	store, err := stream.NewFileStore(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(d.ctx, "orders"); err != nil {
		t.Fatalf("the resume file is not a checkpoint: %v", err)
	}

	// Run 4: goes on after event 6.
	d.insert(t, 7)
	code, stdout, stderr = runTail(d.ctx, append(base, "-limit", "1")...)
	if code != 0 {
		t.Fatalf("run 4: exit %d: %s", code, stderr)
	}
	if ids := docIDs(events(t, stdout, false)); !equalIDs(ids, 7) {
		t.Fatalf("run 4 printed %v, want [7]", ids)
	}
}

// TestCorruptResumeFile: an unreadable resume file is an error, never a
// fresh start.
func TestCorruptResumeFile(t *testing.T) {
	d := newDeployment(t)
	file := filepath.Join(t.TempDir(), "orders.checkpoint.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runTail(d.ctx, "-uri", d.srv.URI(), "-db", "shop", "-resume-file", file, "-limit", "1")
	if code != 1 || stdout != "" || !strings.Contains(stderr, file) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, a message naming the file", code, stdout, stderr)
	}
}

// TestBadFlags: each bad command line gets one line on stderr and exit 2.
func TestBadFlags(t *testing.T) {
	uri := "mongodb://127.0.0.1:1/"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-uri", uri, "-db", "d", "-bogus"}, "-bogus"},
		{"no uri", []string{"-db", "d"}, "-uri is required"},
		{"coll without db", []string{"-uri", uri, "-coll", "orders"}, "-coll \"orders\" needs -db"},
		{"unknown format", []string{"-uri", uri, "-format", "xml"}, "-format \"xml\": want one of json, op, doc"},
		{"unknown directive", []string{"-uri", uri, "-format", "%o %z"}, "unknown directive %z"},
		{"lone percent", []string{"-uri", uri, "-format", "%o %"}, "lone %"},
		{"unknown escape", []string{"-uri", uri, "-format", `%o\q`}, `unknown escape \q`},
		{"bad uri", []string{"-uri", "http://x", "-db", "d"}, "-uri"},
		{"bad json", []string{"-uri", uri, "-db", "d", "-match", `{"operationType": `}, "-match"},
		{"json array", []string{"-uri", uri, "-db", "d", "-match", `[1]`}, "-match"},
		{"json null", []string{"-uri", uri, "-db", "d", "-match", `null`}, "-match"},
		{"json null with spaces", []string{"-uri", uri, "-db", "d", "-match", ` null `}, "-match"},
		{"json string", []string{"-uri", uri, "-db", "d", "-match", `"insert"`}, "-match"},
		{"bad full-document", []string{"-uri", uri, "-db", "d", "-full-document", "always"}, "-full-document"},
		{"bad since", []string{"-uri", uri, "-db", "d", "-since", "yesterday"}, "-since"},
		{"since in the future", []string{"-uri", uri, "-db", "d", "-since", "-5m"}, "-since"},
		{"bad resume file", []string{"-uri", uri, "-db", "d", "-resume-file", "state.json"}, "-resume-file"},
		{"negative limit", []string{"-uri", uri, "-db", "d", "-limit", "-1"}, "-limit"},
		{"bad limit", []string{"-uri", uri, "-db", "d", "-limit", "x"}, "-limit"},
		{"embedded and uri", []string{"-embedded", "-uri", uri}, "-embedded"},
		{"extra argument", []string{"-uri", uri, "-db", "d", "orders"}, "orders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runTail(context.Background(), tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "changetail: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q, want one line naming %s", stderr, tt.want)
			}
		})
	}
}

// TestHelp: -h prints the usage and exits 0.
func TestHelp(t *testing.T) {
	code, _, stderr := runTail(context.Background(), "-h")
	if code != 0 || !strings.Contains(stderr, "-resume-file") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestCredentialsNeverPrinted: the password and user of the URI appear in
// no message, also when the driver's error is about them.
func TestCredentialsNeverPrinted(t *testing.T) {
	srv := mongotest.New(t, nil)
	const user, pass = "alice", "s3cr%40t" // the password is s3cr@t
	tests := []struct {
		name string
		uri  string
		code int
	}{
		// mongotest does not authenticate: the handshake fails.
		{"auth fails", fmt.Sprintf("mongodb://%s:%s@%s/?replicaSet=rs0&serverSelectionTimeoutMS=2000", user, pass, srv.Addr()), 1},
		{"unreachable", fmt.Sprintf("mongodb://%s:%s@127.0.0.1:1/?serverSelectionTimeoutMS=200", user, pass), 1},
		// A common slip: the URI as an argument, which the error quotes.
		{"uri without -uri", fmt.Sprintf("mongodb://%s:%s@%s/", user, pass, srv.Addr()), 2},
		{"bad option", fmt.Sprintf("mongodb://%s:%s@%s/?replicaSet=rs0&authMechanism=BOGUS", user, pass, srv.Addr()), 2},
		{"secret option", fmt.Sprintf("mongodb://%s:%s@%s/?replicaSet=rs0&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:%s&serverSelectionTimeoutMS=2000", user, pass, srv.Addr(), pass), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := []string{"-uri", tt.uri, "-db", "shop", "-limit", "1"}
			if tt.name == "uri without -uri" {
				args = []string{"-db", "shop", tt.uri}
			}
			code, stdout, stderr := runTail(ctx, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			if stderr == "" {
				t.Error("no error message")
			}
			for _, secret := range []string{pass, "s3cr@t", user + ":"} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("output shows %q:\n%s%s", secret, stdout, stderr)
				}
			}
		})
	}
}

// TestEmbedded: -embedded watches its own server and sample writer.
func TestEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, stdout, stderr := runTail(ctx, "-embedded", "-limit", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	evs := events(t, stdout, false)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2:\n%s", len(evs), stdout)
	}
	for _, ev := range evs {
		if ns := ev.Lookup("ns", "coll").StringValue(); ns != "orders" {
			t.Errorf("event on %q, want orders", ns)
		}
	}
}

// TestStatusLine: on a terminal, stderr gets the status line and a
// summary; elsewhere it gets neither.
func TestStatusLine(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		t.Run(fmt.Sprint("terminal=", terminal), func(t *testing.T) {
			defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
			isTerminal = func(io.Writer) bool { return terminal }
			d := newDeployment(t)
			since := d.since()
			d.insert(t, 1)
			code, _, stderr := runTail(d.ctx, "-uri", d.srv.URI(), "-db", "shop", "-since", since, "-limit", "1")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := strings.Contains(stderr, "changetail: 1 events"); got != terminal {
				t.Errorf("summary shown = %v on a terminal = %v: %q", got, terminal, stderr)
			}
		})
	}
}

func TestStatusLineFormat(t *testing.T) {
	var p progress
	if st := p.get(); st.Events != 0 || lagOf(st) != -1 {
		t.Errorf("before a stream: %+v, lag %v; want nothing and an unknown lag", st, lagOf(st))
	}
	known := stream.Stats{Events: 12, ClusterTime: bson.Timestamp{T: 1714557600, I: 4}, Lag: 10*time.Second + 300*time.Millisecond}
	p.follow(func() stream.Stats { return known })
	if st := p.get(); st.Events != 12 || lagOf(st) != known.Lag {
		t.Errorf("following a stream: %+v, lag %v; want its Stats", st, lagOf(st))
	}
	tests := []struct {
		name   string
		events int64
		rate   float64
		lag    string
		want   string
	}{
		{"known lag", 12, 3.25, lagText(known), "12 events  3.2 events/s  lag 10s"},
		{"caught up", 12, 0, lagText(stream.Stats{ClusterTime: known.ClusterTime, CaughtUp: true}), "12 events  0.0 events/s  caught up"},
		{"no cluster time yet", 0, 0, lagText(stream.Stats{}), "0 events  0.0 events/s  lag ?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusLine(tt.events, tt.rate, tt.lag); got != tt.want {
				t.Errorf("statusLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedactor(t *testing.T) {
	tests := []struct {
		name, uri, in, want string
	}{
		{"userinfo in any URI", "", "dial mongodb://bob:pw@h:1/x failed", "dial mongodb://xxxxx@h:1/x failed"},
		{"srv URI", "", "mongodb+srv://bob:pw@cluster/", "mongodb+srv://xxxxx@cluster/"},
		{"password anywhere", "mongodb://bob:hunter2@h/", "auth failed for hunter2", "auth failed for xxxxx"},
		{"decoded password", "mongodb://bob:a%2Fb%40c@h/", "password a/b@c rejected", "password xxxxx rejected"},
		{"secret option", "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:tok123", "token AWS_SESSION_TOKEN:tok123", "token xxxxx"},
		{"nothing to hide", "mongodb://h/", "connection refused", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newRedactor(tt.uri).redact(tt.in); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestLimitSavesWhatWasPrinted: a run that stops at -limit in the middle of
// a batch saves the position after the last event it printed, not after
// the batch: the next run prints the rest, none twice, none skipped.
func TestLimitSavesWhatWasPrinted(t *testing.T) {
	d := newDeployment(t)
	file := filepath.Join(t.TempDir(), "orders.checkpoint.json")
	base := []string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-resume-file", file}
	since := d.since()
	d.insert(t, 1, 2, 3, 4, 5) // one batch for the first run

	for _, run := range []struct {
		limit string
		want  []int32
	}{
		{"2", []int32{1, 2}},
		{"1", []int32{3}},
		{"2", []int32{4, 5}},
	} {
		code, stdout, stderr := runTail(d.ctx, append(base, "-since", since, "-limit", run.limit)...)
		if code != 0 {
			t.Fatalf("-limit %s: exit %d: %s", run.limit, code, stderr)
		}
		if ids := docIDs(events(t, stdout, false)); !equalIDs(ids, run.want...) {
			t.Fatalf("-limit %s printed %v, want %v", run.limit, ids, run.want)
		}
	}
}

// TestWatchesAgainAfterFault: a failure the driver does not resume is
// mended by a new watch, which changetail reports on stderr; no event is
// lost.
func TestWatchesAgainAfterFault(t *testing.T) {
	d := newDeployment(t)
	since := d.since()
	d.insert(t, 1) // in the first batch: no getMore before it is printed
	// The first getMore fails with HostUnreachable without the
	// ResumableChangeStreamError label: the driver gives up, the stream
	// watches again.
	d.srv.FailCommand(mongotest.FailPoint{Commands: []string{"getMore"}, ErrorCode: 6, ErrorLabels: []string{}, Times: 1})
	out := &lineWriter{lines: make(chan struct{}, 10)}
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(d.ctx, []string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-since", since, "-limit", "2"}, out, &errb)
	}()
	select {
	case <-out.lines:
	case code := <-done:
		t.Fatalf("ended with %d before its first event: %s", code, errb.String())
	case <-d.ctx.Done():
		t.Fatal("printed nothing")
	}
	d.insert(t, 2)
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if ids := docIDs(events(t, out.String(), false)); !equalIDs(ids, 1, 2) {
		t.Fatalf("printed %v, want [1 2]", ids)
	}
	if !strings.Contains(errb.String(), `changetail: level=WARN msg="changestream: watching again"`) {
		t.Errorf("stderr does not report the new watch: %q", errb.String())
	}
}

// TestInvalidateThenResume: a dropped collection ends the run after its
// invalidate event is printed; the resume file then holds the invalidate's
// position, and the next run goes on after it (startAfter).
func TestInvalidateThenResume(t *testing.T) {
	d := newDeployment(t)
	file := filepath.Join(t.TempDir(), "orders.checkpoint.json")
	base := []string{"-uri", d.srv.URI(), "-db", "shop", "-coll", "orders", "-resume-file", file}
	since := d.since()
	d.insert(t, 1)
	if err := d.orders.Drop(d.ctx); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runTail(d.ctx, append(base, "-since", since)...)
	if code != 1 || !strings.Contains(stderr, "invalidated") {
		t.Fatalf("exit %d, stderr %q; want 1 and a message about the invalidate", code, stderr)
	}
	var ops []string
	for _, ev := range events(t, stdout, false) {
		ops = append(ops, ev.Lookup("operationType").StringValue())
	}
	if strings.Join(ops, " ") != "insert drop invalidate" {
		t.Fatalf("printed %v, want [insert drop invalidate]", ops)
	}

	d.insert(t, 2)
	code, stdout, stderr = runTail(d.ctx, append(base, "-limit", "1")...)
	if code != 0 {
		t.Fatalf("the run after the invalidate: exit %d: %s", code, stderr)
	}
	if ids := docIDs(events(t, stdout, false)); !equalIDs(ids, 2) {
		t.Fatalf("the run after the invalidate printed %v, want [2]", ids)
	}
}

// TestInterruptWhileServerDown: Ctrl-C while the server is unreachable
// (behind a proxy that stops answering) saves the position after the last
// printed event to the resume file and exits 0; the save does not wait for
// the server.
func TestInterruptWhileServerDown(t *testing.T) {
	d := newDeployment(t)
	proxy, err := faultproxy.New(d.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	file := filepath.Join(t.TempDir(), "orders.checkpoint.json")
	args := []string{"-uri", "mongodb://" + proxy.Addr() + "/?directConnection=true", "-db", "shop", "-coll", "orders",
		"-resume-file", file, "-since", d.since()}
	ctx, interrupt := context.WithCancel(d.ctx)
	defer interrupt()
	out := &lineWriter{lines: make(chan struct{}, 10)}
	done := make(chan int, 1)
	errb := &syncBuffer{wake: make(chan struct{})}
	go func() { done <- run(ctx, args, out, errb) }()
	d.insert(t, 1, 2, 3, 4, 5)
	for n := 0; n < 5; n++ {
		select {
		case <-out.lines:
		case code := <-done:
			t.Fatalf("changetail ended with %d before its events: %s", code, errb.String())
		case <-d.ctx.Done():
			t.Fatalf("changetail printed %d events of 5", n)
		}
	}
	evs := events(t, out.String(), false)
	last := evs[len(evs)-1]
	// The server becomes unreachable; changetail is stopped while it
	// tries to reach it.
	proxy.SetDown(true)
	if err := proxy.WaitHeld(d.ctx, 1); err != nil {
		t.Fatalf("changetail did not try to reach the server again: %v", err)
	}
	interrupt()
	start := time.Now()
	code := <-done
	t.Logf("stopped in %v: %s", time.Since(start), errb.String())
	if code != 0 {
		t.Fatalf("exit %d after Ctrl-C with the server down, want 0: %s", code, errb.String())
	}
	store, err := stream.NewFileStore(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := store.Load(context.Background(), "orders")
	if err != nil {
		t.Fatalf("no position saved: %v", err)
	}
	tt, ti, _ := last.Lookup("clusterTime").TimestampOK()
	if want := (bson.Timestamp{T: tt, I: ti}); cp.ClusterTime.Before(want) {
		t.Errorf("saved position at %v, before the last printed event at %v", cp.ClusterTime, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{} // closed and replaced at each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.wake)
	b.wake = make(chan struct{})
	return b.buf.Write(p)
}

// waitFor waits until the buffer holds s; false when ctx ends first.
func (b *syncBuffer) waitFor(ctx context.Context, s string) bool {
	for {
		b.mu.Lock()
		found, wake := strings.Contains(b.buf.String(), s), b.wake
		b.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
