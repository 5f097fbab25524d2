package unified

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// entities is a test's entity map.
type entities struct {
	byID    map[string]any
	clients []*clientEntity
	streams []*mongo.ChangeStream
}

func newEntities() *entities { return &entities{byID: make(map[string]any)} }

// clientEntity is a client and the command events it observed.
type clientEntity struct {
	client  *mongo.Client
	observe map[string]bool // observed event types
	ignore  map[string]bool // command names not recorded

	mu      sync.Mutex
	started []*event.CommandStartedEvent
}

// sensitive commands are never recorded, as the format requires.
var sensitive = []string{"authenticate", "saslStart", "saslContinue", "getnonce", "createUser",
	"updateUser", "copydbgetnonce", "copydbsaslstart", "copydb", "hello", "ismaster", "isMaster",
	"configureFailPoint"}

func (c *clientEntity) startedEvent(_ context.Context, ev *event.CommandStartedEvent) {
	if !c.observe["commandStartedEvent"] || c.ignore[ev.CommandName] || slices.Contains(sensitive, ev.CommandName) {
		return
	}
	cp := *ev
	cp.Command = slices.Clone(ev.Command)
	c.mu.Lock()
	c.started = append(c.started, &cp)
	c.mu.Unlock()
}

func (c *clientEntity) events() []*event.CommandStartedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.started)
}

// create builds the entities of createEntities.
func (es *entities) create(ctx context.Context, uri string, defs []bson.Raw) error {
	for _, def := range defs {
		elems, err := def.Elements()
		if err != nil || len(elems) != 1 {
			return fmt.Errorf("createEntities: malformed entry %s", def)
		}
		kind := elems[0].Key()
		spec, ok := elems[0].Value().DocumentOK()
		if !ok {
			return fmt.Errorf("createEntities: %s must be a document", kind)
		}
		id, _ := spec.Lookup("id").StringValueOK()
		if id == "" {
			return fmt.Errorf("createEntities: %s without id", kind)
		}
		if _, dup := es.byID[id]; dup {
			return fmt.Errorf("createEntities: duplicate id %q", id)
		}
		var ent any
		switch kind {
		case "client":
			ent, err = es.newClient(ctx, uri, spec)
		case "database":
			ent, err = es.newDatabase(spec)
		case "collection":
			ent, err = es.newCollection(spec)
		default:
			err = fmt.Errorf("unsupported entity type %q", kind)
		}
		if err != nil {
			return fmt.Errorf("createEntities %s %q: %w", kind, id, err)
		}
		es.byID[id] = ent
	}
	return nil
}

func (es *entities) newClient(ctx context.Context, uri string, spec bson.Raw) (*clientEntity, error) {
	ce := &clientEntity{observe: map[string]bool{}, ignore: map[string]bool{}}
	elems, _ := spec.Elements()
	for _, el := range elems {
		switch el.Key() {
		case "id", "useMultipleMongoses":
		case "observeEvents":
			for _, v := range stringList(el.Value()) {
				if v != "commandStartedEvent" {
					return nil, fmt.Errorf("unsupported observed event %q", v)
				}
				ce.observe[v] = true
			}
		case "ignoreCommandMonitoringEvents":
			for _, v := range stringList(el.Value()) {
				ce.ignore[v] = true
			}
		case "uriOptions":
			opts, _ := el.Value().DocumentOK()
			var err error
			if uri, err = withURIOptions(uri, opts); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unsupported client option %q", el.Key())
		}
	}
	opts := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).
		SetHeartbeatInterval(heartbeat).
		SetMonitor(&event.CommandMonitor{Started: ce.startedEvent})
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, err
	}
	ce.client = c
	es.clients = append(es.clients, ce)
	return ce, nil
}

// heartbeat is the clients' heartbeat interval. It bounds Disconnect: the
// driver (v2.10.0) can miss the cancellation of a streaming hello that has
// just started, and then waits for the server's answer, which comes after
// the heartbeat interval (10 s by default).
const heartbeat = 500 * time.Millisecond

func withURIOptions(uri string, opts bson.Raw) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	q := u.Query()
	elems, _ := opts.Elements()
	for _, el := range elems {
		v := el.Value()
		var s string
		switch v.Type {
		case bson.TypeString:
			s = v.StringValue()
		case bson.TypeBoolean:
			s = fmt.Sprint(v.Boolean())
		case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
			f, _ := number(v)
			s = fmt.Sprint(f)
		default:
			return "", fmt.Errorf("unsupported uriOption %s of type %s", el.Key(), v.Type)
		}
		q.Set(el.Key(), s)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (es *entities) newDatabase(spec bson.Raw) (*mongo.Database, error) {
	cid, _ := spec.Lookup("client").StringValueOK()
	ce, err := entity[*clientEntity](es, cid)
	if err != nil {
		return nil, err
	}
	name, _ := spec.Lookup("databaseName").StringValueOK()
	if _, err := spec.LookupErr("databaseOptions"); err == nil {
		return nil, fmt.Errorf("unsupported databaseOptions")
	}
	return ce.client.Database(name), nil
}

func (es *entities) newCollection(spec bson.Raw) (*mongo.Collection, error) {
	did, _ := spec.Lookup("database").StringValueOK()
	db, err := entity[*mongo.Database](es, did)
	if err != nil {
		return nil, err
	}
	name, _ := spec.Lookup("collectionName").StringValueOK()
	if _, err := spec.LookupErr("collectionOptions"); err == nil {
		return nil, fmt.Errorf("unsupported collectionOptions")
	}
	return db.Collection(name), nil
}

// entity returns the entity id as a T.
func entity[T any](es *entities, id string) (T, error) {
	v, ok := es.byID[id]
	if !ok {
		var zero T
		return zero, fmt.Errorf("no entity %q", id)
	}
	t, ok := v.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("entity %q is a %T, not a %T", id, v, zero)
	}
	return t, nil
}

// value returns an entity saved from a result as a BSON value.
func (es *entities) value(id string) (bson.RawValue, bool) {
	v, ok := es.byID[id].(bson.RawValue)
	return v, ok
}

// close closes the change streams and disconnects the clients.
func (es *entities) close(ctx context.Context) {
	for _, cs := range es.streams {
		_ = cs.Close(ctx)
	}
	for _, c := range es.clients {
		_ = c.client.Disconnect(ctx)
	}
}

// stringList reads an array of strings.
func stringList(v bson.RawValue) []string {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil
	}
	vals, _ := arr.Values()
	out := make([]string, 0, len(vals))
	for _, x := range vals {
		if s, ok := x.StringValueOK(); ok {
			out = append(out, s)
		}
	}
	return out
}
