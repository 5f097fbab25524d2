package unified

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// opTimeout bounds one operation, so that a server that never answers
// fails the test instead of hanging it.
const opTimeout = 10 * time.Second

// bounded returns a context cancelled after opTimeout. It carries no
// deadline: the Go driver treats a context with a deadline as a
// client-side operation timeout (CSOT) and then retries without limit,
// which would change what the spec tests observe.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(opTimeout, cancel)
	return ctx, func() {
		timer.Stop()
		cancel()
	}
}

// failPointSet is a failpoint a test configured, to turn off afterwards.
type failPointSet struct {
	client *mongo.Client
	name   string
}

// argMap holds an operation's arguments; each handler takes the ones it
// implements, and done refuses the rest, so that no argument is
// silently ignored.
type argMap struct {
	op string
	m  map[string]bson.RawValue
}

func newArgs(op string, raw bson.Raw) *argMap {
	a := &argMap{op: op, m: map[string]bson.RawValue{}}
	elems, _ := raw.Elements()
	for _, el := range elems {
		a.m[el.Key()] = el.Value()
	}
	return a
}

func (a *argMap) take(key string) (bson.RawValue, bool) {
	v, ok := a.m[key]
	delete(a.m, key)
	return v, ok
}

func (a *argMap) str(key string) (string, error) {
	v, ok := a.take(key)
	if !ok {
		return "", fmt.Errorf("%s: missing argument %q", a.op, key)
	}
	s, ok := v.StringValueOK()
	if !ok {
		return "", fmt.Errorf("%s: argument %q must be a string", a.op, key)
	}
	return s, nil
}

func (a *argMap) doc(key string) (bson.Raw, error) {
	v, ok := a.take(key)
	if !ok {
		return nil, fmt.Errorf("%s: missing argument %q", a.op, key)
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, fmt.Errorf("%s: argument %q must be a document", a.op, key)
	}
	return d, nil
}

// any returns an argument as a Go value for the driver, or nil.
func (a *argMap) any(key string) any {
	v, ok := a.take(key)
	if !ok {
		return nil
	}
	return goValue(v)
}

func (a *argMap) done() error {
	if len(a.m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(a.m))
	for k := range a.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("%s: unsupported arguments %v", a.op, keys)
}

// goValue turns a spec value into what the driver's helpers accept:
// documents as bson.Raw, arrays as bson.A.
func goValue(v bson.RawValue) any {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		return v.Document()
	case bson.TypeArray:
		vals, _ := v.Array().Values()
		out := make(bson.A, len(vals))
		for i, x := range vals {
			out[i] = goValue(x)
		}
		return out
	}
	return v
}

// toValue marshals a Go result as a BSON value.
func toValue(v any) (bson.RawValue, error) {
	t, data, err := bson.MarshalValue(v)
	if err != nil {
		return bson.RawValue{}, err
	}
	return bson.RawValue{Type: t, Value: data}, nil
}

func docValue(d bson.Raw) bson.RawValue {
	return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: d}
}

// result is what an operation returns: a value to match, an entity to
// save, or both absent.
type result struct {
	value  bson.RawValue
	entity any
}

func valueResult(v any) (result, error) {
	if v == nil {
		return result{}, nil
	}
	rv, err := toValue(v)
	return result{value: rv}, err
}

// execute runs one operation and returns its result (also when it
// failed, for the partial results of bulk writes).
func (r *testRun) execute(ctx context.Context, op *Operation) (bson.RawValue, any, error) {
	a := newArgs(op.Name, op.Arguments)
	ctx, cancel := bounded(ctx)
	defer cancel()
	if v, ok := a.m["session"]; ok && op.Object != "testRunner" {
		delete(a.m, "session")
		se, err := entity[*sessionEntity](r.ents, v.StringValue())
		if err != nil {
			return bson.RawValue{}, nil, err
		}
		ctx = mongo.NewSessionContext(ctx, se.sess)
	}
	res, err := r.dispatch(ctx, op, a)
	var se *skipError
	if err == nil || !errors.As(err, &se) {
		if derr := a.done(); derr != nil && err == nil {
			err = derr
		}
	}
	return res.value, res.entity, err
}

func (r *testRun) dispatch(ctx context.Context, op *Operation, a *argMap) (result, error) {
	if why, ok := driverLacks[op.Name]; ok {
		return result{}, skipf("operation %s: %s", op.Name, why)
	}
	if op.Object == "testRunner" {
		return result{}, r.testRunnerOp(ctx, op.Name, a)
	}
	obj, ok := r.ents.byID[op.Object]
	if !ok {
		return result{}, fmt.Errorf("no entity %q", op.Object)
	}
	switch o := obj.(type) {
	case *clientEntity:
		return r.clientOp(ctx, o, op.Name, a)
	case *mongo.Database:
		return r.databaseOp(ctx, o, op.Name, a)
	case *mongo.Collection:
		return r.collectionOp(ctx, o, op.Name, a)
	case *sessionEntity:
		return r.sessionOp(ctx, o, op.Name, a)
	case *bucketEntity:
		return bucketOp(ctx, o, op.Name, a)
	case cursorEntity:
		return cursorOp(ctx, o, op.Name)
	}
	return result{}, fmt.Errorf("unsupported operation %q on %T", op.Name, obj)
}

// driverLacks lists the operations of the spec files that the Go driver
// (v2.10.0) has no API for, with the reason a test using one is skipped.
var driverLacks = map[string]string{
	"count":                 "the Go driver v2 has no Collection.Count (removed in v2; countDocuments replaces it)",
	"mapReduce":             "the Go driver has no mapReduce helper",
	"listCollectionObjects": "the Go driver has no listCollectionObjects helper (listCollections returns the specifications)",
	"listDatabaseObjects":   "the Go driver has no listDatabaseObjects helper (listDatabases returns the specifications)",
}

func cursorOp(ctx context.Context, c cursorEntity, name string) (result, error) {
	switch name {
	case "iterateUntilDocumentOrError":
		if c.Next(ctx) {
			return result{value: docValue(current(c))}, nil
		}
		if err := c.Err(); err != nil {
			return result{}, err
		}
		return result{}, errors.New("cursor ended without a document or an error")
	case "iterateOnce":
		if c.TryNext(ctx) {
			return result{value: docValue(current(c))}, nil
		}
		return result{}, c.Err()
	case "close":
		return result{}, c.Close(ctx)
	}
	return result{}, fmt.Errorf("unsupported cursor operation %q", name)
}

func bucketOp(ctx context.Context, b *bucketEntity, name string, a *argMap) (result, error) {
	var ds *mongo.GridFSDownloadStream
	var err error
	switch name {
	case "download":
		id, ok := a.take("id")
		if !ok {
			return result{}, errors.New("download: missing id")
		}
		ds, err = b.bucket.OpenDownloadStream(ctx, goValue(id))
	case "downloadByName":
		fn, ferr := a.str("filename")
		if ferr != nil {
			return result{}, ferr
		}
		ds, err = b.bucket.OpenDownloadStreamByName(ctx, fn)
	default:
		return result{}, fmt.Errorf("unsupported bucket operation %q", name)
	}
	if err != nil {
		return result{}, err
	}
	defer ds.Close()
	data, err := io.ReadAll(ds)
	if err != nil {
		return result{}, err
	}
	return valueResult(bson.Binary{Data: data})
}

func (r *testRun) clientOp(ctx context.Context, c *clientEntity, name string, a *argMap) (result, error) {
	switch name {
	case "createChangeStream":
		return r.watch(ctx, a, c.client.Watch)
	case "listDatabases", "listDatabaseNames":
		filter := a.any("filter")
		if filter == nil {
			filter = bson.D{}
		}
		opts := options.ListDatabases()
		if v, ok := a.take("nameOnly"); ok {
			opts.SetNameOnly(v.Boolean())
		}
		if v, ok := a.take("authorizedDatabases"); ok {
			opts.SetAuthorizedDatabases(v.Boolean())
		}
		if name == "listDatabaseNames" {
			names, err := c.client.ListDatabaseNames(ctx, filter, opts)
			if err != nil {
				return result{}, err
			}
			return valueResult(names)
		}
		res, err := c.client.ListDatabases(ctx, filter, opts)
		if err != nil {
			return result{}, err
		}
		return valueResult(res.Databases)
	case "clientBulkWrite":
		return clientBulkWrite(ctx, c.client, a)
	}
	return result{}, fmt.Errorf("unsupported client operation %q", name)
}

func (r *testRun) databaseOp(ctx context.Context, db *mongo.Database, name string, a *argMap) (result, error) {
	switch name {
	case "createChangeStream":
		return r.watch(ctx, a, db.Watch)
	case "aggregate":
		pipeline := a.any("pipeline")
		opts, err := aggregateOptions(a)
		if err != nil {
			return result{}, err
		}
		cur, err := db.Aggregate(ctx, pipeline, opts)
		return cursorResult(ctx, cur, err)
	case "dropCollection":
		coll, err := a.str("collection")
		if err != nil {
			return result{}, err
		}
		return result{}, db.Collection(coll).Drop(ctx)
	case "createCollection":
		return result{}, createCollection(ctx, db, a)
	case "listCollections", "listCollectionNames":
		filter := a.any("filter")
		if filter == nil {
			filter = bson.D{}
		}
		opts := options.ListCollections()
		if v, ok := a.take("batchSize"); ok {
			n, _ := number(v)
			opts.SetBatchSize(int32(n))
		}
		if v, ok := a.take("nameOnly"); ok {
			opts.SetNameOnly(v.Boolean())
		}
		if v, ok := a.take("rawData"); ok {
			if err := setRawData(opts, v); err != nil {
				return result{}, err
			}
		}
		if name == "listCollectionNames" {
			names, err := db.ListCollectionNames(ctx, filter, opts)
			if err != nil {
				return result{}, err
			}
			return valueResult(names)
		}
		cur, err := db.ListCollections(ctx, filter, opts)
		return cursorResult(ctx, cur, err)
	case "runCommand":
		if _, err := a.str("commandName"); err != nil {
			return result{}, err
		}
		cmd, err := a.doc("command")
		if err != nil {
			return result{}, err
		}
		opts := options.RunCmd()
		if v, ok := a.take("readPreference"); ok {
			rp, err := readPreference(v.Document())
			if err != nil {
				return result{}, err
			}
			opts.SetReadPreference(rp)
		}
		reply, err := db.RunCommand(ctx, cmd, opts).Raw()
		if err != nil {
			return result{}, err
		}
		return result{value: docValue(reply)}, nil
	case "runCursorCommand", "createCommandCursor":
		if _, err := a.str("commandName"); err != nil {
			return result{}, err
		}
		cmd, err := a.doc("command")
		if err != nil {
			return result{}, err
		}
		var batchSize int32 = -1
		if v, ok := a.take("batchSize"); ok {
			n, _ := number(v)
			batchSize = int32(n)
		}
		var comment any
		if v, ok := a.take("comment"); ok {
			comment = goValue(v)
		}
		if _, ok := a.take("maxTimeMS"); ok {
			return result{}, skipf("the Go driver v2 sets no getMore maxTimeMS for a command cursor (it uses the context deadline)")
		}
		if v, ok := a.take("cursorType"); ok {
			return result{}, skipf("cursorType %s is not supported by this runner", v)
		}
		// The cursor outlives this operation's context.
		cur, err := db.RunCommandCursor(context.WithoutCancel(ctx), cmd)
		if err != nil {
			return result{}, err
		}
		if batchSize >= 0 {
			cur.SetBatchSize(batchSize)
		}
		if comment != nil {
			cur.SetComment(comment)
		}
		if name == "createCommandCursor" {
			r.ents.cursors = append(r.ents.cursors, cur)
			return result{entity: cur}, nil
		}
		return cursorResult(ctx, cur, nil)
	case "modifyCollection":
		// The Go driver has no collMod helper: send the command.
		coll, err := a.str("collection")
		if err != nil {
			return result{}, err
		}
		cmd := bson.D{{Key: "collMod", Value: coll}}
		for _, k := range []string{"validator", "index", "changeStreamPreAndPostImages", "expireAfterSeconds", "timeseries", "validationLevel", "validationAction"} {
			if v, ok := a.take(k); ok {
				cmd = append(cmd, bson.E{Key: k, Value: v})
			}
		}
		return result{}, db.RunCommand(ctx, cmd).Err()
	}
	return result{}, fmt.Errorf("unsupported database operation %q", name)
}

// cursorResult reads a cursor to its end as the operation's result.
func cursorResult(ctx context.Context, cur *mongo.Cursor, err error) (result, error) {
	if err != nil {
		return result{}, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	docs := bson.A{}
	for cur.Next(ctx) {
		docs = append(docs, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return result{}, err
	}
	return valueResult(docs)
}

func createCollection(ctx context.Context, db *mongo.Database, a *argMap) error {
	name, err := a.str("collection")
	if err != nil {
		return err
	}
	if v, ok := a.take("viewOn"); ok {
		pipeline := bson.A{}
		if p, ok := a.take("pipeline"); ok {
			pipeline, _ = goValue(p).(bson.A)
		}
		return db.CreateView(ctx, name, v.StringValue(), pipeline)
	}
	opts := options.CreateCollection()
	for k, v := range a.m {
		switch k {
		case "capped":
			opts.SetCapped(v.Boolean())
		case "size":
			n, _ := number(v)
			opts.SetSizeInBytes(int64(n))
		case "max":
			n, _ := number(v)
			opts.SetMaxDocuments(int64(n))
		case "expireAfterSeconds":
			n, _ := number(v)
			opts.SetExpireAfterSeconds(int64(n))
		case "changeStreamPreAndPostImages":
			opts.SetChangeStreamPreAndPostImages(v.Document())
		case "clusteredIndex":
			opts.SetClusteredIndex(v.Document())
		case "timeseries":
			d := v.Document()
			ts := options.TimeSeries()
			if f, ok := d.Lookup("timeField").StringValueOK(); ok {
				ts.SetTimeField(f)
			}
			if f, ok := d.Lookup("metaField").StringValueOK(); ok {
				ts.SetMetaField(f)
			}
			if f, ok := d.Lookup("granularity").StringValueOK(); ok {
				ts.SetGranularity(f)
			}
			opts.SetTimeSeriesOptions(ts)
		case "validator":
			opts.SetValidator(v.Document())
		default:
			continue
		}
		delete(a.m, k)
	}
	return db.CreateCollection(ctx, name, opts)
}

type watcher func(ctx context.Context, pipeline any, opts ...options.Lister[options.ChangeStreamOptions]) (*mongo.ChangeStream, error)

func (r *testRun) watch(ctx context.Context, a *argMap, watch watcher) (result, error) {
	opts := options.ChangeStream()
	pipeline := bson.A{}
	for k, v := range a.m {
		switch k {
		case "pipeline":
			p, ok := goValue(v).(bson.A)
			if !ok {
				return result{}, errors.New("createChangeStream: pipeline must be an array")
			}
			pipeline = p
		case "batchSize":
			n, _ := number(v)
			opts.SetBatchSize(int32(n))
		case "comment":
			opts.SetComment(goValue(v))
		case "fullDocument":
			opts.SetFullDocument(options.FullDocument(v.StringValue()))
		case "fullDocumentBeforeChange":
			opts.SetFullDocumentBeforeChange(options.FullDocument(v.StringValue()))
		case "showExpandedEvents":
			opts.SetShowExpandedEvents(v.Boolean())
		case "maxAwaitTimeMS":
			n, _ := number(v)
			opts.SetMaxAwaitTime(time.Duration(n) * time.Millisecond)
		case "resumeAfter":
			opts.SetResumeAfter(goValue(v))
		case "startAfter":
			opts.SetStartAfter(goValue(v))
		case "startAtOperationTime":
			t, i := v.Timestamp()
			opts.SetStartAtOperationTime(&bson.Timestamp{T: t, I: i})
		default:
			continue
		}
		delete(a.m, k)
	}
	// The stream outlives this operation's context.
	cs, err := watch(context.WithoutCancel(ctx), pipeline, opts)
	if err != nil {
		return result{}, err
	}
	r.ents.cursors = append(r.ents.cursors, cs)
	return result{entity: cs}, nil
}

func (r *testRun) sessionOp(ctx context.Context, s *sessionEntity, name string, a *argMap) (result, error) {
	switch name {
	case "startTransaction":
		to, err := transactionOptions(argsDoc(a))
		if err != nil {
			return result{}, err
		}
		return result{}, s.sess.StartTransaction(to)
	case "commitTransaction":
		return result{}, s.sess.CommitTransaction(ctx)
	case "abortTransaction":
		return result{}, s.sess.AbortTransaction(ctx)
	case "endSession":
		s.sess.EndSession(ctx)
		s.ended = true
		return result{}, nil
	case "withTransaction":
		v, ok := a.take("callback")
		if !ok {
			return result{}, errors.New("withTransaction: missing callback")
		}
		var callback []Operation
		if err := bson.UnmarshalValue(v.Type, v.Value, &callback); err != nil {
			return result{}, fmt.Errorf("withTransaction callback: %w", err)
		}
		to, err := transactionOptions(argsDoc(a))
		if err != nil {
			return result{}, err
		}
		m := &matcher{entities: r.ents}
		var failed error // an expectation of the callback's operations failed
		// The callback's context is the transaction's; its operations
		// get their own timeout from execute.
		_, err = s.sess.WithTransaction(context.WithoutCancel(ctx), func(ctx context.Context) (any, error) {
			for i := range callback {
				opErr, err := r.runOperation(ctx, m, &callback[i])
				if err != nil {
					failed = fmt.Errorf("callback operation %d (%s): %w", i, callback[i].Name, err)
					return nil, failed
				}
				if opErr != nil {
					return nil, opErr
				}
			}
			return nil, nil
		}, to)
		if failed != nil {
			return result{}, &expectationError{failed}
		}
		return result{}, err
	case "getSnapshotTime":
		t := s.sess.SnapshotTime()
		return valueResult(t)
	}
	return result{}, fmt.Errorf("unsupported session operation %q", name)
}

// expectationError is a failed expectation inside withTransaction's
// callback: the test fails whatever withTransaction's own expectations.
type expectationError struct{ err error }

func (e *expectationError) Error() string { return e.err.Error() }
func (e *expectationError) Unwrap() error { return e.err }

// argsDoc turns the remaining arguments back into a document, consuming
// them.
func argsDoc(a *argMap) bson.Raw {
	d := bson.D{}
	keys := make([]string, 0, len(a.m))
	for k := range a.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d = append(d, bson.E{Key: k, Value: a.m[k]})
		delete(a.m, k)
	}
	raw, _ := bson.Marshal(d)
	return raw
}
