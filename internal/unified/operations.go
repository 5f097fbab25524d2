package unified

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// opTimeout bounds one operation, so that a server that never answers
// fails the test instead of hanging it.
const opTimeout = 10 * time.Second

// failPointSet is a failpoint a test configured, to turn off afterwards.
type failPointSet struct {
	client *mongo.Client
	name   string
}

// args wraps an operation's arguments.
type args struct{ raw bson.Raw }

func (a args) get(key string) (bson.RawValue, bool) {
	if a.raw == nil {
		return bson.RawValue{}, false
	}
	v, err := a.raw.LookupErr(key)
	return v, err == nil
}

func (a args) str(key string) (string, error) {
	v, ok := a.get(key)
	if !ok {
		return "", fmt.Errorf("missing argument %q", key)
	}
	s, ok := v.StringValueOK()
	if !ok {
		return "", fmt.Errorf("argument %q must be a string", key)
	}
	return s, nil
}

func (a args) doc(key string) (bson.Raw, error) {
	v, ok := a.get(key)
	if !ok {
		return nil, fmt.Errorf("missing argument %q", key)
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, fmt.Errorf("argument %q must be a document", key)
	}
	return d, nil
}

// only fails on arguments the runner does not implement for an operation.
func (a args) only(op string, known ...string) error {
	elems, _ := a.raw.Elements()
	for _, el := range elems {
		found := false
		for _, k := range known {
			if el.Key() == k {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s: unsupported argument %q", op, el.Key())
		}
	}
	return nil
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

// execute runs one operation and returns its result, if any.
func (r *testRun) execute(ctx context.Context, op *Operation) (bson.RawValue, any, error) {
	a := args{op.Arguments}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if op.Object == "testRunner" {
		switch op.Name {
		case "failPoint":
			return bson.RawValue{}, nil, r.failPoint(ctx, a)
		}
		return bson.RawValue{}, nil, fmt.Errorf("unsupported testRunner operation %q", op.Name)
	}
	obj, ok := r.ents.byID[op.Object]
	if !ok {
		return bson.RawValue{}, nil, fmt.Errorf("no entity %q", op.Object)
	}
	switch o := obj.(type) {
	case *clientEntity:
		switch op.Name {
		case "createChangeStream":
			return r.watch(ctx, a, o.client.Watch)
		}
	case *mongo.Database:
		switch op.Name {
		case "createChangeStream":
			return r.watch(ctx, a, o.Watch)
		case "dropCollection":
			if err := a.only(op.Name, "collection"); err != nil {
				return bson.RawValue{}, nil, err
			}
			name, err := a.str("collection")
			if err != nil {
				return bson.RawValue{}, nil, err
			}
			return bson.RawValue{}, nil, o.Collection(name).Drop(ctx)
		case "createCollection":
			return bson.RawValue{}, nil, createCollection(ctx, o, a)
		case "runCommand":
			if err := a.only(op.Name, "command", "commandName"); err != nil {
				return bson.RawValue{}, nil, err
			}
			cmd, err := a.doc("command")
			if err != nil {
				return bson.RawValue{}, nil, err
			}
			reply, err := o.RunCommand(ctx, cmd).Raw()
			if err != nil {
				return bson.RawValue{}, nil, err
			}
			return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: reply}, nil, nil
		}
	case *mongo.Collection:
		return r.collectionOp(ctx, o, op.Name, a)
	case *mongo.ChangeStream:
		switch op.Name {
		case "iterateUntilDocumentOrError":
			if o.Next(ctx) {
				return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: o.Current}, nil, nil
			}
			if err := o.Err(); err != nil {
				return bson.RawValue{}, nil, err
			}
			return bson.RawValue{}, nil, errors.New("change stream ended without a document or an error")
		case "iterateOnce":
			if o.TryNext(ctx) {
				return bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: o.Current}, nil, nil
			}
			return bson.RawValue{}, nil, o.Err()
		case "close":
			return bson.RawValue{}, nil, o.Close(ctx)
		}
	}
	return bson.RawValue{}, nil, fmt.Errorf("unsupported operation %q on %T", op.Name, obj)
}

func (r *testRun) failPoint(ctx context.Context, a args) error {
	cid, err := a.str("client")
	if err != nil {
		return err
	}
	ce, err := entity[*clientEntity](r.ents, cid)
	if err != nil {
		return err
	}
	fp, err := a.doc("failPoint")
	if err != nil {
		return err
	}
	name, _ := fp.Lookup("configureFailPoint").StringValueOK()
	if err := ce.client.Database("admin").RunCommand(ctx, fp).Err(); err != nil {
		return fmt.Errorf("configureFailPoint: %w", err)
	}
	r.failPoints = append(r.failPoints, failPointSet{client: ce.client, name: name})
	return nil
}

func createCollection(ctx context.Context, db *mongo.Database, a args) error {
	if err := a.only("createCollection", "collection", "viewOn", "pipeline"); err != nil {
		return err
	}
	name, err := a.str("collection")
	if err != nil {
		return err
	}
	if v, ok := a.get("viewOn"); ok {
		pipeline := bson.A{}
		if p, ok := a.get("pipeline"); ok {
			pipeline, _ = goValue(p).(bson.A)
		}
		return db.CreateView(ctx, name, v.StringValue(), pipeline)
	}
	return db.CreateCollection(ctx, name)
}

type watcher func(ctx context.Context, pipeline any, opts ...options.Lister[options.ChangeStreamOptions]) (*mongo.ChangeStream, error)

func (r *testRun) watch(ctx context.Context, a args, watch watcher) (bson.RawValue, any, error) {
	opts := options.ChangeStream()
	pipeline := bson.A{}
	elems, _ := a.raw.Elements()
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "pipeline":
			p, ok := goValue(v).(bson.A)
			if !ok {
				return bson.RawValue{}, nil, errors.New("createChangeStream: pipeline must be an array")
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
			return bson.RawValue{}, nil, fmt.Errorf("createChangeStream: unsupported argument %q", el.Key())
		}
	}
	// The stream outlives this operation's context.
	cs, err := watch(context.WithoutCancel(ctx), pipeline, opts)
	if err != nil {
		return bson.RawValue{}, nil, err
	}
	r.ents.streams = append(r.ents.streams, cs)
	return bson.RawValue{}, cs, nil
}

func (r *testRun) collectionOp(ctx context.Context, c *mongo.Collection, name string, a args) (bson.RawValue, any, error) {
	var res any
	var err error
	switch name {
	case "createChangeStream":
		return r.watch(ctx, a, c.Watch)
	case "insertOne":
		if err := a.only(name, "document"); err != nil {
			return bson.RawValue{}, nil, err
		}
		d, derr := a.doc("document")
		if derr != nil {
			return bson.RawValue{}, nil, derr
		}
		var ir *mongo.InsertOneResult
		if ir, err = c.InsertOne(ctx, d); err == nil {
			res = bson.D{{Key: "insertedId", Value: ir.InsertedID}}
		}
	case "updateOne", "replaceOne":
		key := "update"
		if name == "replaceOne" {
			key = "replacement"
		}
		if err := a.only(name, "filter", key); err != nil {
			return bson.RawValue{}, nil, err
		}
		f, ferr := a.doc("filter")
		if ferr != nil {
			return bson.RawValue{}, nil, ferr
		}
		u, ok := a.get(key)
		if !ok {
			return bson.RawValue{}, nil, fmt.Errorf("%s: missing %s", name, key)
		}
		var ur *mongo.UpdateResult
		if name == "updateOne" {
			ur, err = c.UpdateOne(ctx, f, goValue(u))
		} else {
			ur, err = c.ReplaceOne(ctx, f, goValue(u))
		}
		if err == nil {
			d := bson.D{{Key: "matchedCount", Value: ur.MatchedCount}, {Key: "modifiedCount", Value: ur.ModifiedCount}, {Key: "upsertedCount", Value: ur.UpsertedCount}}
			if ur.UpsertedID != nil {
				d = append(d, bson.E{Key: "upsertedId", Value: ur.UpsertedID})
			}
			res = d
		}
	case "deleteOne":
		if err := a.only(name, "filter"); err != nil {
			return bson.RawValue{}, nil, err
		}
		f, ferr := a.doc("filter")
		if ferr != nil {
			return bson.RawValue{}, nil, ferr
		}
		var dr *mongo.DeleteResult
		if dr, err = c.DeleteOne(ctx, f); err == nil {
			res = bson.D{{Key: "deletedCount", Value: dr.DeletedCount}}
		}
	case "createIndex":
		if err := a.only(name, "keys", "name"); err != nil {
			return bson.RawValue{}, nil, err
		}
		keys, kerr := a.doc("keys")
		if kerr != nil {
			return bson.RawValue{}, nil, kerr
		}
		model := mongo.IndexModel{Keys: keys}
		if n, ok := a.get("name"); ok {
			model.Options = options.Index().SetName(n.StringValue())
		}
		var idx string
		if idx, err = c.Indexes().CreateOne(ctx, model); err == nil {
			res = idx
		}
	case "dropIndex":
		if err := a.only(name, "name"); err != nil {
			return bson.RawValue{}, nil, err
		}
		n, nerr := a.str("name")
		if nerr != nil {
			return bson.RawValue{}, nil, nerr
		}
		err = c.Indexes().DropOne(ctx, n)
	case "rename":
		// The Go driver has no rename helper: send renameCollection on admin.
		if err := a.only(name, "to", "dropTarget"); err != nil {
			return bson.RawValue{}, nil, err
		}
		to, terr := a.str("to")
		if terr != nil {
			return bson.RawValue{}, nil, terr
		}
		db := c.Database()
		cmd := bson.D{
			{Key: "renameCollection", Value: db.Name() + "." + c.Name()},
			{Key: "to", Value: db.Name() + "." + to},
		}
		if dt, ok := a.get("dropTarget"); ok {
			cmd = append(cmd, bson.E{Key: "dropTarget", Value: dt.Boolean()})
		}
		err = db.Client().Database("admin").RunCommand(ctx, cmd).Err()
	default:
		return bson.RawValue{}, nil, fmt.Errorf("unsupported collection operation %q", name)
	}
	if err != nil || res == nil {
		return bson.RawValue{}, nil, err
	}
	v, err := toValue(res)
	return v, nil, err
}
