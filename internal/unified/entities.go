package unified

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// entities is a test's entity map.
type entities struct {
	byID     map[string]any
	clients  []*clientEntity
	sessions []*sessionEntity
	cursors  []cursorEntity
}

func newEntities() *entities { return &entities{byID: make(map[string]any)} }

// clientEntity is a client and the events it observed.
type clientEntity struct {
	client    *mongo.Client
	observe   map[string]bool // observed event types
	ignore    map[string]bool // command names not recorded
	sensitive bool            // observeSensitiveCommands

	mu         sync.Mutex
	commands   []commandEvent
	cmap       []cmapEvent
	checkedOut int // connections checked out of the pool now
}

// commandEvent is one command monitoring event.
type commandEvent struct {
	kind         string // commandStartedEvent, commandSucceededEvent, commandFailedEvent
	name         string
	databaseName string
	command      bson.Raw // started
	reply        bson.Raw // succeeded
	hasServiceID bool
	hasConnID    bool
}

// cmapEvent is one connection pool event.
type cmapEvent struct {
	kind   string
	reason string
}

// sensitiveCommands are recorded only with observeSensitiveCommands, as
// the format requires. The runner's own configureFailPoint commands are
// never recorded.
var sensitiveCommands = []string{"authenticate", "saslStart", "saslContinue", "getnonce", "createUser",
	"updateUser", "copydbgetnonce", "copydbsaslstart", "copydb", "hello", "ismaster", "isMaster"}

// recordable reports whether a command event is kept.
func (c *clientEntity) recordable(kind, name string, cmd bson.Raw) bool {
	if !c.observe[kind] || c.ignore[name] || name == "configureFailPoint" {
		return false
	}
	if slices.Contains(sensitiveCommands, name) {
		if !c.sensitive {
			return false
		}
		if cmd != nil {
			if _, err := cmd.LookupErr("speculativeAuthenticate"); err == nil {
				return false
			}
		}
	}
	return true
}

func (c *clientEntity) add(ev commandEvent) {
	c.mu.Lock()
	c.commands = append(c.commands, ev)
	c.mu.Unlock()
}

func (c *clientEntity) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, ev *event.CommandStartedEvent) {
			if c.recordable("commandStartedEvent", ev.CommandName, ev.Command) {
				c.add(commandEvent{kind: "commandStartedEvent", name: ev.CommandName, databaseName: ev.DatabaseName,
					command: slices.Clone(ev.Command), hasServiceID: ev.ServiceID != nil, hasConnID: ev.ServerConnectionID != nil})
			}
		},
		Succeeded: func(_ context.Context, ev *event.CommandSucceededEvent) {
			if c.recordable("commandSucceededEvent", ev.CommandName, nil) {
				c.add(commandEvent{kind: "commandSucceededEvent", name: ev.CommandName, databaseName: ev.DatabaseName,
					reply: slices.Clone(ev.Reply), hasServiceID: ev.ServiceID != nil, hasConnID: ev.ServerConnectionID != nil})
			}
		},
		Failed: func(_ context.Context, ev *event.CommandFailedEvent) {
			if c.recordable("commandFailedEvent", ev.CommandName, nil) {
				c.add(commandEvent{kind: "commandFailedEvent", name: ev.CommandName, databaseName: ev.DatabaseName,
					hasServiceID: ev.ServiceID != nil, hasConnID: ev.ServerConnectionID != nil})
			}
		},
	}
}

// cmapKinds maps the driver's pool event types to the format's names.
var cmapKinds = map[string]string{
	event.ConnectionPoolCreated:     "poolCreatedEvent",
	event.ConnectionPoolReady:       "poolReadyEvent",
	event.ConnectionPoolCleared:     "poolClearedEvent",
	event.ConnectionPoolClosed:      "poolClosedEvent",
	event.ConnectionCreated:         "connectionCreatedEvent",
	event.ConnectionReady:           "connectionReadyEvent",
	event.ConnectionClosed:          "connectionClosedEvent",
	event.ConnectionCheckOutStarted: "connectionCheckOutStartedEvent",
	event.ConnectionCheckOutFailed:  "connectionCheckOutFailedEvent",
	event.ConnectionCheckedOut:      "connectionCheckedOutEvent",
	event.ConnectionCheckedIn:       "connectionCheckedInEvent",
}

func (c *clientEntity) poolMonitor() *event.PoolMonitor {
	return &event.PoolMonitor{Event: func(ev *event.PoolEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch ev.Type {
		case event.ConnectionCheckedOut:
			c.checkedOut++
		case event.ConnectionCheckedIn:
			c.checkedOut--
		}
		kind := cmapKinds[ev.Type]
		if kind != "" && c.observe[kind] {
			c.cmap = append(c.cmap, cmapEvent{kind: kind, reason: ev.Reason})
		}
	}}
}

func (c *clientEntity) commandEvents() []commandEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.commands)
}

func (c *clientEntity) cmapEvents() []cmapEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.cmap)
}

// startedCommands returns the recorded commandStartedEvents.
func (c *clientEntity) startedCommands() []commandEvent {
	var out []commandEvent
	for _, e := range c.commandEvents() {
		if e.kind == "commandStartedEvent" {
			out = append(out, e)
		}
	}
	return out
}

// sessionEntity is an explicit session with the lsid it was created with
// (which stays known after the session ends).
type sessionEntity struct {
	sess   *mongo.Session
	lsid   bson.Raw
	client *clientEntity
	ended  bool
}

// bucketEntity is a GridFS bucket.
type bucketEntity struct{ bucket *mongo.GridFSBucket }

// cursorEntity is an iterable saved as an entity: a change stream or a
// cursor.
type cursorEntity interface {
	Next(ctx context.Context) bool
	TryNext(ctx context.Context) bool
	Err() error
	Close(ctx context.Context) error
}

// current returns the document a cursorEntity is positioned on.
func current(c cursorEntity) bson.Raw {
	switch c := c.(type) {
	case *mongo.ChangeStream:
		return c.Current
	case *mongo.Cursor:
		return c.Current
	}
	return nil
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
			ent, err = es.newClient(uri, spec)
		case "database":
			ent, err = es.newDatabase(spec)
		case "collection":
			ent, err = es.newCollection(spec)
		case "session":
			ent, err = es.newSession(spec)
		case "bucket":
			ent, err = es.newBucket(spec)
		default:
			err = skipf("entity type %q is not supported by this runner", kind)
		}
		if err != nil {
			return fmt.Errorf("createEntities %s %q: %w", kind, id, err)
		}
		es.byID[id] = ent
	}
	return nil
}

func (es *entities) newClient(uri string, spec bson.Raw) (*clientEntity, error) {
	ce := &clientEntity{observe: map[string]bool{}, ignore: map[string]bool{}}
	opts := options.Client()
	elems, _ := spec.Elements()
	var err error
	for _, el := range elems {
		switch el.Key() {
		case "id", "useMultipleMongoses":
		case "observeEvents":
			for _, v := range stringList(el.Value()) {
				ce.observe[v] = true
			}
		case "ignoreCommandMonitoringEvents":
			for _, v := range stringList(el.Value()) {
				ce.ignore[v] = true
			}
		case "observeSensitiveCommands":
			ce.sensitive = el.Value().Boolean()
		case "uriOptions":
			u, _ := el.Value().DocumentOK()
			if uri, err = withURIOptions(uri, u); err != nil {
				return nil, err
			}
		case "serverApi":
			d, _ := el.Value().DocumentOK()
			v, _ := d.Lookup("version").StringValueOK()
			api := options.ServerAPI(options.ServerAPIVersion(v))
			if s, ok := d.Lookup("strict").BooleanOK(); ok {
				api.SetStrict(s)
			}
			if s, ok := d.Lookup("deprecationErrors").BooleanOK(); ok {
				api.SetDeprecationErrors(s)
			}
			opts.SetServerAPIOptions(api)
		default:
			return nil, skipf("client option %q is not supported by this runner", el.Key())
		}
	}
	opts.ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).
		SetMonitor(ce.monitor()).
		SetPoolMonitor(ce.poolMonitor())
	if !strings.Contains(uri, "heartbeatFrequencyMS") {
		opts.SetHeartbeatInterval(heartbeat)
	}
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
	opts := options.Database()
	if d, ok := spec.Lookup("databaseOptions").DocumentOK(); ok {
		c, err := parseConcerns(d)
		if err != nil {
			return nil, err
		}
		opts.SetReadConcern(c.read).SetWriteConcern(c.write).SetReadPreference(c.pref)
	}
	return ce.client.Database(name, opts), nil
}

func (es *entities) newCollection(spec bson.Raw) (*mongo.Collection, error) {
	did, _ := spec.Lookup("database").StringValueOK()
	db, err := entity[*mongo.Database](es, did)
	if err != nil {
		return nil, err
	}
	name, _ := spec.Lookup("collectionName").StringValueOK()
	opts := options.Collection()
	if d, ok := spec.Lookup("collectionOptions").DocumentOK(); ok {
		c, err := parseConcerns(d)
		if err != nil {
			return nil, err
		}
		opts.SetReadConcern(c.read).SetWriteConcern(c.write).SetReadPreference(c.pref)
	}
	return db.Collection(name, opts), nil
}

func (es *entities) newSession(spec bson.Raw) (*sessionEntity, error) {
	cid, _ := spec.Lookup("client").StringValueOK()
	ce, err := entity[*clientEntity](es, cid)
	if err != nil {
		return nil, err
	}
	opts := options.Session()
	if d, ok := spec.Lookup("sessionOptions").DocumentOK(); ok {
		elems, _ := d.Elements()
		for _, el := range elems {
			switch el.Key() {
			case "causalConsistency":
				opts.SetCausalConsistency(el.Value().Boolean())
			case "snapshot":
				opts.SetSnapshot(el.Value().Boolean())
			case "snapshotTime":
				// The name of an entity saved from getSnapshotTime.
				id, _ := el.Value().StringValueOK()
				v, ok := es.value(id)
				if !ok || v.Type != bson.TypeTimestamp {
					return nil, fmt.Errorf("sessionOptions.snapshotTime: no timestamp entity %q", id)
				}
				t, i := v.Timestamp()
				opts.SetSnapshotTime(bson.Timestamp{T: t, I: i})
			case "defaultTransactionOptions":
				to, err := transactionOptions(el.Value().Document())
				if err != nil {
					return nil, err
				}
				opts.SetDefaultTransactionOptions(to)
			default:
				return nil, skipf("session option %q is not supported by this runner", el.Key())
			}
		}
	}
	sess, err := ce.client.StartSession(opts)
	if err != nil {
		return nil, err
	}
	se := &sessionEntity{sess: sess, lsid: slices.Clone(sess.ID()), client: ce}
	es.sessions = append(es.sessions, se)
	return se, nil
}

func (es *entities) newBucket(spec bson.Raw) (*bucketEntity, error) {
	did, _ := spec.Lookup("database").StringValueOK()
	db, err := entity[*mongo.Database](es, did)
	if err != nil {
		return nil, err
	}
	if _, err := spec.LookupErr("bucketOptions"); err == nil {
		return nil, skipf("bucketOptions are not supported by this runner")
	}
	return &bucketEntity{bucket: db.GridFSBucket()}, nil
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

// close ends the sessions, closes the cursors and change streams and
// disconnects the clients, all clients at once (each Disconnect can
// wait for a heartbeat).
func (es *entities) close(ctx context.Context) {
	for _, cs := range es.cursors {
		_ = cs.Close(ctx)
	}
	for _, s := range es.sessions {
		if !s.ended {
			s.sess.EndSession(ctx)
		}
	}
	var wg sync.WaitGroup
	for _, c := range es.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.client.Disconnect(ctx)
		}()
	}
	wg.Wait()
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
