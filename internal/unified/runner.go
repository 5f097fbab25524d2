package unified

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Runner runs spec files, one subtest per test, against a fresh server
// per test.
type Runner struct {
	// Target is the deployment runOnRequirements are checked against.
	Target Target
	// NewServer starts a server for one test and returns its URI; the
	// server must be stopped when t ends.
	NewServer func(t *testing.T) string

	mu                      sync.Mutex
	passed, failed, skipped int
	failures                []string
}

// Summary is the line `spec: N passed, M failed, K skipped`.
func (r *Runner) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("spec: %d passed, %d failed, %d skipped", r.passed, r.failed, r.skipped)
}

// Failures lists the tests that failed, as "file/test".
func (r *Runner) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

func (r *Runner) record(t *testing.T, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case t.Failed():
		r.failed++
		r.failures = append(r.failures, name)
	case t.Skipped():
		r.skipped++
	default:
		r.passed++
	}
}

// RunDir runs every *.json file of dir, in name order.
func (r *Runner) RunDir(t *testing.T, dir string) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		t.Fatalf("no spec files in %s", dir)
	}
	for _, p := range paths {
		f, err := ReadFile(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		t.Run(name, func(t *testing.T) { r.RunFile(t, name, f) })
	}
}

// RunFile runs the tests of one parsed file.
func (r *Runner) RunFile(t *testing.T, name string, f *File) {
	fileUnmet := r.Target.unmet(f.RunOn)
	for i := range f.Tests {
		tc := &f.Tests[i]
		t.Run(tc.Description, func(t *testing.T) {
			defer r.record(t, name+"/"+tc.Description)
			if fileUnmet != "" {
				t.Skip("file runOnRequirements: " + fileUnmet)
			}
			if why := r.Target.unmet(tc.RunOn); why != "" {
				t.Skip("runOnRequirements: " + why)
			}
			if tc.SkipReason != "" {
				t.Skip("skipReason: " + tc.SkipReason)
			}
			run := &testRun{t: t, file: f, test: tc, uri: r.NewServer(t), ents: newEntities()}
			run.run()
		})
	}
}

// testRun is the state of one running test.
type testRun struct {
	t          *testing.T
	file       *File
	test       *Test
	uri        string
	ents       *entities
	failPoints []failPointSet
}

func (r *testRun) run() {
	t := r.t
	ctx := context.Background()
	if err := r.loadInitialData(ctx); err != nil {
		t.Fatalf("initialData: %v", err)
	}
	defer r.cleanup()
	if err := r.ents.create(ctx, r.uri, r.file.CreateEntities); err != nil {
		t.Fatal(err)
	}
	m := &matcher{entities: r.ents}
	for i := range r.test.Operations {
		op := &r.test.Operations[i]
		res, ent, err := r.execute(ctx, op)
		if err := r.check(m, op, res, err); err != nil {
			t.Fatalf("operation %d (%s on %s): %v", i, op.Name, op.Object, err)
		}
		if op.SaveResultAsEntity != "" {
			if ent == nil {
				ent = res
			}
			r.ents.byID[op.SaveResultAsEntity] = ent
		}
	}
	for _, ee := range r.test.ExpectEvents {
		if err := r.checkEvents(m, &ee); err != nil {
			t.Fatalf("expectEvents for %s: %v", ee.Client, err)
		}
	}
	if len(r.test.Outcome) > 0 {
		t.Fatalf("outcome is not supported")
	}
}

// cleanup turns off the test's failpoints and closes its entities.
func (r *testRun) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for _, fp := range r.failPoints {
		off := bson.D{{Key: "configureFailPoint", Value: fp.name}, {Key: "mode", Value: "off"}}
		if err := fp.client.Database("admin").RunCommand(ctx, off).Err(); err != nil {
			r.t.Errorf("disable failpoint %s: %v", fp.name, err)
		}
	}
	r.ents.close(ctx)
}

// loadInitialData drops, creates and fills the initialData collections
// through a client of its own.
func (r *testRun) loadInitialData(ctx context.Context) error {
	if len(r.file.InitialData) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(r.uri).SetServerSelectionTimeout(5 * time.Second).SetHeartbeatInterval(heartbeat))
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	for _, cd := range r.file.InitialData {
		db := c.Database(cd.DatabaseName)
		coll := db.Collection(cd.CollectionName)
		if err := coll.Drop(ctx); err != nil {
			return err
		}
		if len(cd.CreateOptions) > 5 {
			return errors.New("initialData createOptions are not supported")
		}
		if err := db.CreateCollection(ctx, cd.CollectionName); err != nil {
			return err
		}
		if len(cd.Documents) > 0 {
			docs := make([]any, len(cd.Documents))
			for i, d := range cd.Documents {
				docs[i] = d
			}
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return err
			}
		}
	}
	return nil
}

// check compares an operation's outcome with its expectations.
func (r *testRun) check(m *matcher, op *Operation, res bson.RawValue, err error) error {
	if op.IgnoreResultAndError {
		return nil
	}
	if op.ExpectError != nil {
		if err == nil {
			return fmt.Errorf("expected an error, got result %s", res)
		}
		return checkError(m, op.ExpectError, err)
	}
	if err != nil {
		return fmt.Errorf("unexpected error: %w", err)
	}
	if op.ExpectResult.Type != 0 {
		if res.Type == 0 {
			return errors.New("expected a result, got none")
		}
		if err := m.matchRoot(op.ExpectResult, res); err != nil {
			return fmt.Errorf("result %s: %w", res, err)
		}
	}
	return nil
}

func checkError(m *matcher, ee *ExpectError, err error) error {
	var se mongo.ServerError
	isServer := errors.As(err, &se)
	if ee.IsClientError != nil && *ee.IsClientError == isServer {
		return fmt.Errorf("isClientError %v, got %T: %v", *ee.IsClientError, err, err)
	}
	if ee.IsTimeoutError != nil && *ee.IsTimeoutError != mongo.IsTimeout(err) {
		return fmt.Errorf("isTimeoutError %v, got %v", *ee.IsTimeoutError, err)
	}
	if ee.ErrorContains != "" && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(ee.ErrorContains)) {
		return fmt.Errorf("error %q does not contain %q", err, ee.ErrorContains)
	}
	if ee.ErrorCode != nil && (!isServer || !se.HasErrorCode(int(*ee.ErrorCode))) {
		return fmt.Errorf("expected error code %d, got %v", *ee.ErrorCode, err)
	}
	if ee.ErrorCodeName != "" {
		var ce mongo.CommandError
		if !errors.As(err, &ce) || ce.Name != ee.ErrorCodeName {
			return fmt.Errorf("expected error code name %s, got %v", ee.ErrorCodeName, err)
		}
	}
	for _, l := range ee.ErrorLabelsContain {
		if !isServer || !se.HasErrorLabel(l) {
			return fmt.Errorf("expected error label %s, got %v", l, err)
		}
	}
	for _, l := range ee.ErrorLabelsOmit {
		if isServer && se.HasErrorLabel(l) {
			return fmt.Errorf("expected no error label %s, got %v", l, err)
		}
	}
	if ee.ExpectResult.Type != 0 {
		return errors.New("expectError.expectResult is not supported")
	}
	return nil
}

// checkEvents compares a client's recorded command-started events.
func (r *testRun) checkEvents(m *matcher, ee *ExpectedEvents) error {
	if ee.EventType != "" && ee.EventType != "command" {
		return fmt.Errorf("unsupported eventType %q", ee.EventType)
	}
	ce, err := entity[*clientEntity](r.ents, ee.Client)
	if err != nil {
		return err
	}
	got := ce.events()
	if len(got) < len(ee.Events) || (!ee.IgnoreExtraEvents && len(got) != len(ee.Events)) {
		return fmt.Errorf("expected %d events, got %d: %s", len(ee.Events), len(got), describe(got))
	}
	for i, want := range ee.Events {
		spec, err := want.LookupErr("commandStartedEvent")
		if err != nil {
			return fmt.Errorf("event %d: unsupported expected event %s", i, want)
		}
		sd := spec.Document()
		ev := got[i]
		if v, err := sd.LookupErr("commandName"); err == nil && v.StringValue() != ev.CommandName {
			return fmt.Errorf("event %d: commandName %s, expected %s (events: %s)", i, ev.CommandName, v.StringValue(), describe(got))
		}
		if v, err := sd.LookupErr("databaseName"); err == nil && v.StringValue() != ev.DatabaseName {
			return fmt.Errorf("event %d: databaseName %s, expected %s", i, ev.DatabaseName, v.StringValue())
		}
		if v, err := sd.LookupErr("command"); err == nil {
			actual := bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: ev.Command}
			if err := m.matchRoot(v, actual); err != nil {
				return fmt.Errorf("event %d (%s): %w; command %s", i, ev.CommandName, err, ev.Command)
			}
		}
	}
	return nil
}

func describe(evs []*event.CommandStartedEvent) string {
	names := make([]string, len(evs))
	for i, e := range evs {
		names[i] = e.CommandName
	}
	return "[" + strings.Join(names, " ") + "]"
}
