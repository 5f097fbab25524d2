package unified

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/session"
)

// testRunnerOp runs an operation on the "testRunner" object.
func (r *testRun) testRunnerOp(ctx context.Context, name string, a *argMap) error {
	switch name {
	case "failPoint":
		cid, err := a.str("client")
		if err != nil {
			return err
		}
		ce, err := entity[*clientEntity](r.ents, cid)
		if err != nil {
			return err
		}
		return r.setFailPoint(ctx, ce.client, a)
	case "targetedFailPoint":
		// On a single-node replica set the server a session is pinned
		// to is the only one: configure it through the session's client.
		sid, err := a.str("session")
		if err != nil {
			return err
		}
		se, err := entity[*sessionEntity](r.ents, sid)
		if err != nil {
			return err
		}
		return r.setFailPoint(ctx, se.client.client, a)
	case "createEntities":
		v, ok := a.take("entities")
		if !ok {
			return errors.New("createEntities: missing entities")
		}
		vals, _ := v.Array().Values()
		defs := make([]bson.Raw, len(vals))
		for i, x := range vals {
			defs[i] = x.Document()
		}
		return r.ents.create(ctx, r.uri, defs)
	case "assertSessionPinned", "assertSessionUnpinned":
		cs, err := r.clientSession(a)
		if err != nil {
			return err
		}
		want := name == "assertSessionPinned"
		if pinned := cs.PinnedServerAddr != nil; pinned != want {
			return fmt.Errorf("session pinned: %v, expected %v", pinned, want)
		}
		return nil
	case "assertSessionDirty", "assertSessionNotDirty":
		cs, err := r.clientSession(a)
		if err != nil {
			return err
		}
		want := name == "assertSessionDirty"
		dirty := cs.Server != nil && cs.Server.Dirty
		if dirty != want {
			return fmt.Errorf("session dirty: %v, expected %v", dirty, want)
		}
		return nil
	case "assertSessionTransactionState":
		cs, err := r.clientSession(a)
		if err != nil {
			return err
		}
		want, err := a.str("state")
		if err != nil {
			return err
		}
		states := map[session.TransactionState]string{
			session.None: "none", session.Starting: "starting", session.InProgress: "in_progress",
			session.Committed: "committed", session.Aborted: "aborted",
		}
		if got := states[cs.TransactionState]; got != want {
			return fmt.Errorf("transaction state %s, expected %s", got, want)
		}
		return nil
	case "assertSameLsidOnLastTwoCommands", "assertDifferentLsidOnLastTwoCommands":
		cid, err := a.str("client")
		if err != nil {
			return err
		}
		ce, err := entity[*clientEntity](r.ents, cid)
		if err != nil {
			return err
		}
		evs := ce.startedCommands()
		if len(evs) < 2 {
			return fmt.Errorf("%s: fewer than two commands recorded", name)
		}
		first, err1 := evs[len(evs)-2].command.LookupErr("lsid")
		second, err2 := evs[len(evs)-1].command.LookupErr("lsid")
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%s: a command has no lsid", name)
		}
		if same := first.Equal(second); same != (name == "assertSameLsidOnLastTwoCommands") {
			return fmt.Errorf("%s: lsids %s and %s", name, first, second)
		}
		return nil
	case "assertCollectionExists", "assertCollectionNotExists":
		dbName, err := a.str("databaseName")
		if err != nil {
			return err
		}
		coll, err := a.str("collectionName")
		if err != nil {
			return err
		}
		return r.withAdmin(ctx, func(c *mongo.Client) error {
			names, err := c.Database(dbName).ListCollectionNames(ctx, bson.D{{Key: "name", Value: coll}})
			if err != nil {
				return err
			}
			if exists := len(names) == 1; exists != (name == "assertCollectionExists") {
				return fmt.Errorf("collection %s.%s exists: %v", dbName, coll, exists)
			}
			return nil
		})
	case "assertIndexExists", "assertIndexNotExists":
		dbName, err := a.str("databaseName")
		if err != nil {
			return err
		}
		coll, err := a.str("collectionName")
		if err != nil {
			return err
		}
		index, err := a.str("indexName")
		if err != nil {
			return err
		}
		return r.withAdmin(ctx, func(c *mongo.Client) error {
			cur, err := c.Database(dbName).Collection(coll).Indexes().List(ctx)
			exists := false
			if err == nil {
				var specs []struct {
					Name string `bson:"name"`
				}
				if err := cur.All(ctx, &specs); err != nil {
					return err
				}
				for _, s := range specs {
					exists = exists || s.Name == index
				}
			} else {
				var ce mongo.CommandError
				if !errors.As(err, &ce) || ce.Code != 26 { // NamespaceNotFound: no collection, no index
					return err
				}
			}
			if exists != (name == "assertIndexExists") {
				return fmt.Errorf("index %s on %s.%s exists: %v", index, dbName, coll, exists)
			}
			return nil
		})
	case "assertNumberConnectionsCheckedOut":
		cid, err := a.str("client")
		if err != nil {
			return err
		}
		ce, err := entity[*clientEntity](r.ents, cid)
		if err != nil {
			return err
		}
		v, _ := a.take("connections")
		want, _ := number(v)
		ce.mu.Lock()
		got := ce.checkedOut
		ce.mu.Unlock()
		if float64(got) != want {
			return fmt.Errorf("%d connections checked out, expected %v", got, want)
		}
		return nil
	}
	return fmt.Errorf("unsupported testRunner operation %q", name)
}

func (r *testRun) setFailPoint(ctx context.Context, c *mongo.Client, a *argMap) error {
	fp, err := a.doc("failPoint")
	if err != nil {
		return err
	}
	name, _ := fp.Lookup("configureFailPoint").StringValueOK()
	if err := c.Database("admin").RunCommand(ctx, fp).Err(); err != nil {
		return fmt.Errorf("configureFailPoint: %w", err)
	}
	r.failPoints = append(r.failPoints, failPointSet{client: c, name: name})
	return nil
}

// withAdmin runs f with a client of the runner's own, whose commands no
// entity observes.
func (r *testRun) withAdmin(ctx context.Context, f func(*mongo.Client) error) error {
	c, err := r.adminClient()
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	return f(c)
}

// clientSession returns the driver's session state behind a session
// entity. The Go driver exports no accessor for whether a session is
// pinned or dirty, so this reads the unexported field, as the driver's
// own runner does.
func (r *testRun) clientSession(a *argMap) (*session.Client, error) {
	sid, err := a.str("session")
	if err != nil {
		return nil, err
	}
	se, err := entity[*sessionEntity](r.ents, sid)
	if err != nil {
		return nil, err
	}
	f := reflect.ValueOf(se.sess).Elem().FieldByName("clientSession")
	if !f.IsValid() {
		return nil, errors.New("mongo.Session has no clientSession field")
	}
	cs, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*session.Client)
	if !ok || cs == nil {
		return nil, errors.New("mongo.Session.clientSession is not a *session.Client")
	}
	return cs, nil
}
