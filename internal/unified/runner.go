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
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// Runner runs spec files, one subtest per test.
type Runner struct {
	// Target is the deployment runOnRequirements are checked against.
	Target Target
	// NewServer starts a server and returns its URI; the server must be
	// stopped when t ends.
	NewServer func(t *testing.T) string
	// ServerPerFile makes the tests of one file share one server, started
	// by the file's first test that runs; between tests the runner resets
	// what the format says it resets (the initialData collections, the
	// failpoints, the open sessions). When false, every test gets a
	// server of its own.
	ServerPerFile bool
	// ParallelFiles runs the files of a directory as parallel subtests
	// (each with its own server when ServerPerFile is set).
	ParallelFiles bool
	// CountFailures makes a failed spec test a count (and a log line)
	// instead of a failure of its Go test, for suites that do not pass
	// in full yet; the caller decides from the counts what fails.
	CountFailures bool

	mu       sync.Mutex
	total    Counts
	byLabel  map[string]*Counts
	failures []string
}

// Counts are the outcomes of a set of tests.
type Counts struct {
	Passed, Failed, Skipped int
}

// String formats the counts as "N passed, M failed, K skipped".
func (c Counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.Passed, c.Failed, c.Skipped)
}

// Summary is the line `spec: N passed, M failed, K skipped` over every
// test the runner ran.
func (r *Runner) Summary() string {
	return "spec: " + r.Total().String()
}

// Total returns the counts over every test the runner ran.
func (r *Runner) Total() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Counts returns the counts of the tests run under label (the base name
// of the directory given to RunDir).
func (r *Runner) Counts(label string) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.byLabel[label]; c != nil {
		return *c
	}
	return Counts{}
}

// Failures lists the tests that failed, as "label/file/test: error".
func (r *Runner) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

func (r *Runner) record(t *testing.T, failure error, label, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byLabel == nil {
		r.byLabel = make(map[string]*Counts)
	}
	c := r.byLabel[label]
	if c == nil {
		c = &Counts{}
		r.byLabel[label] = c
	}
	switch {
	case failure != nil || t.Failed():
		r.total.Failed++
		c.Failed++
		if failure != nil {
			name += ": " + failure.Error()
		}
		r.failures = append(r.failures, label+"/"+name)
	case t.Skipped():
		r.total.Skipped++
		c.Skipped++
	default:
		r.total.Passed++
		c.Passed++
	}
}

// RunDir runs every *.json file of dir, in name order. Its tests are
// counted under the directory's base name.
func (r *Runner) RunDir(t *testing.T, dir string) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		t.Fatalf("no spec files in %s", dir)
	}
	label := filepath.Base(dir)
	for _, p := range paths {
		f, err := ReadFile(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		t.Run(name, func(t *testing.T) {
			if r.ParallelFiles {
				t.Parallel()
			}
			r.runFile(t, label, name, f)
		})
	}
}

// RunFile runs the tests of one parsed file, counted under name's
// directory-less label "file".
func (r *Runner) RunFile(t *testing.T, name string, f *File) {
	r.runFile(t, "file", name, f)
}

func (r *Runner) runFile(t *testing.T, label, name string, f *File) {
	fileUnmet := r.Target.unmet(f.RunOn)
	skips := make([]string, len(f.Tests))
	runs := false
	for i := range f.Tests {
		skips[i] = r.skipReason(fileUnmet, f, &f.Tests[i])
		runs = runs || skips[i] == ""
	}
	var shared string // the file's server, when ServerPerFile
	if r.ServerPerFile && runs {
		shared = r.NewServer(t)
	}
	for i := range f.Tests {
		tc := &f.Tests[i]
		t.Run(tc.Description, func(t *testing.T) {
			var failure error
			defer func() { r.record(t, failure, label, name+"/"+tc.Description) }()
			if skips[i] != "" {
				t.Skip(skips[i])
			}
			uri := shared
			if !r.ServerPerFile {
				uri = r.NewServer(t)
			}
			run := &testRun{t: t, file: f, test: tc, uri: uri, ents: newEntities()}
			if err := run.run(); err != nil {
				failure = err
				if r.CountFailures {
					t.Logf("FAILED (counted, not failing the Go test): %v", err)
				} else {
					t.Fatal(err)
				}
			}
		})
	}
}

// skipReason says why a test does not run, or "" when it does.
func (r *Runner) skipReason(fileUnmet string, f *File, tc *Test) string {
	switch {
	case fileUnmet != "":
		return "file runOnRequirements: " + fileUnmet
	case r.Target.unmet(tc.RunOn) != "":
		return "runOnRequirements: " + r.Target.unmet(tc.RunOn)
	case tc.SkipReason != "":
		return "skipReason: " + tc.SkipReason
	}
	return unsupported(f, tc)
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

// skipError makes the runner skip a test it cannot run as written,
// such as one that needs an API the Go driver does not have.
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skip: " + e.reason }

func skipf(format string, a ...any) error { return &skipError{reason: fmt.Sprintf(format, a...)} }

// run runs the test. It skips the test (t.Skip) when it cannot be run
// as written, and returns the first failed expectation.
func (r *testRun) run() (err error) {
	ctx := context.Background()
	admin, err := r.adminClient()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = admin.Disconnect(context.Background()) }()
	if err := killAllSessions(ctx, admin); err != nil {
		return fmt.Errorf("killAllSessions: %w", err)
	}
	if err := loadInitialData(ctx, admin, r.file.InitialData); err != nil {
		return fmt.Errorf("initialData: %w", err)
	}
	defer func() {
		if cerr := r.cleanup(); err == nil {
			err = cerr
		}
	}()
	if err := r.ents.create(ctx, r.uri, r.file.CreateEntities); err != nil {
		return r.skipOr(err)
	}
	m := &matcher{entities: r.ents}
	for i := range r.test.Operations {
		op := &r.test.Operations[i]
		if _, err := r.runOperation(ctx, m, op); err != nil {
			return r.skipOr(fmt.Errorf("operation %d (%s on %s): %w", i, op.Name, op.Object, err))
		}
	}
	for _, ee := range r.test.ExpectEvents {
		if err := r.checkEvents(m, &ee); err != nil {
			return fmt.Errorf("expectEvents for %s: %w", ee.Client, err)
		}
	}
	for _, cd := range r.test.Outcome {
		if err := checkOutcome(ctx, admin, cd); err != nil {
			return fmt.Errorf("outcome %s.%s: %w", cd.DatabaseName, cd.CollectionName, err)
		}
	}
	return nil
}

// skipOr skips the test when err is a skipError and returns err
// otherwise.
func (r *testRun) skipOr(err error) error {
	var se *skipError
	if errors.As(err, &se) {
		r.t.Skip(se.reason)
	}
	return err
}

// runOperation executes one operation, checks it against its
// expectations and saves its result. It returns the operation's own
// error when that error was expected (withTransaction's callback hands
// it on), and an error when an expectation failed.
func (r *testRun) runOperation(ctx context.Context, m *matcher, op *Operation) (opErr error, err error) {
	res, ent, opErr := r.execute(ctx, op)
	var se *skipError
	if errors.As(opErr, &se) {
		return nil, opErr
	}
	if err := r.check(m, op, res, opErr); err != nil {
		return nil, err
	}
	if op.SaveResultAsEntity != "" {
		if ent == nil {
			ent = res
		}
		r.ents.byID[op.SaveResultAsEntity] = ent
	}
	return opErr, nil
}

func (r *testRun) adminClient() (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(r.uri).
		SetServerSelectionTimeout(5 * time.Second).SetHeartbeatInterval(heartbeat))
}

// killAllSessions ends the sessions and transactions earlier tests left
// on the server, as the format asks of runners before each test. A
// server without the command (CommandNotFound) has none to end.
func killAllSessions(ctx context.Context, c *mongo.Client) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "killAllSessions", Value: bson.A{}}}).Err()
	var ce mongo.CommandError
	if errors.As(err, &ce) && (ce.Code == 59 || ce.Code == 11601) { // CommandNotFound, Interrupted
		return nil
	}
	return err
}

// cleanup turns off the test's failpoints and closes its entities.
func (r *testRun) cleanup() error {
	ctx, cancel := bounded(context.Background())
	defer cancel()
	var errs []error
	for _, fp := range r.failPoints {
		off := bson.D{{Key: "configureFailPoint", Value: fp.name}, {Key: "mode", Value: "off"}}
		if err := fp.client.Database("admin").RunCommand(ctx, off).Err(); err != nil {
			errs = append(errs, fmt.Errorf("disable failpoint %s: %w", fp.name, err))
		}
	}
	r.ents.close(ctx)
	return errors.Join(errs...)
}

// loadInitialData drops, creates and fills the initialData collections,
// with majority write concern as the format asks.
func loadInitialData(ctx context.Context, c *mongo.Client, data []CollData) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	wc := options.Database().SetWriteConcern(writeconcern.Majority())
	for _, cd := range data {
		db := c.Database(cd.DatabaseName, wc)
		coll := db.Collection(cd.CollectionName)
		if err := coll.Drop(ctx); err != nil {
			return err
		}
		cmd := bson.D{{Key: "create", Value: cd.CollectionName}}
		if len(cd.CreateOptions) > 5 {
			elems, _ := cd.CreateOptions.Elements()
			for _, el := range elems {
				cmd = append(cmd, bson.E{Key: el.Key(), Value: el.Value()})
			}
		}
		cmd = append(cmd, bson.E{Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}}})
		if err := db.RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("create %s: %w", cd.CollectionName, err)
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

// checkOutcome compares a collection's documents, read with primary read
// preference and local read concern in _id order, with the expected
// ones. Outcomes match exactly (apart from the order of fields): no
// extra fields, no special operators, numbers of the same type.
func checkOutcome(ctx context.Context, c *mongo.Client, cd CollData) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	coll := c.Database(cd.DatabaseName).Collection(cd.CollectionName,
		options.Collection().SetReadPreference(readpref.Primary()).SetReadConcern(readconcern.Local()))
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return err
	}
	var docs []bson.Raw
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	if len(docs) != len(cd.Documents) {
		return fmt.Errorf("expected %d documents, got %d: %v", len(cd.Documents), len(docs), docs)
	}
	for i, want := range cd.Documents {
		if !sameDocument(want, docs[i]) {
			return fmt.Errorf("document %d: expected %s, got %s", i, want, docs[i])
		}
	}
	return nil
}

// sameDocument reports whether two documents hold the same fields with
// the same values, in any order.
func sameDocument(a, b bson.Raw) bool {
	ea, err1 := a.Elements()
	eb, err2 := b.Elements()
	if err1 != nil || err2 != nil || len(ea) != len(eb) {
		return false
	}
	for _, el := range ea {
		v, err := b.LookupErr(el.Key())
		if err != nil || !sameValue(el.Value(), v) {
			return false
		}
	}
	return true
}

func sameValue(a, b bson.RawValue) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case bson.TypeEmbeddedDocument:
		return sameDocument(a.Document(), b.Document())
	case bson.TypeArray:
		va, _ := a.Array().Values()
		vb, _ := b.Array().Values()
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if !sameValue(va[i], vb[i]) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}
