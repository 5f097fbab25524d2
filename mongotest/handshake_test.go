package mongotest_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// topologyKinds records the kinds of topology the driver saw.
type topologyKinds struct {
	mu    sync.Mutex
	kinds []string
	set   string
}

func (k *topologyKinds) monitor() *event.ServerMonitor {
	return &event.ServerMonitor{TopologyDescriptionChanged: func(e *event.TopologyDescriptionChangedEvent) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.kinds = append(k.kinds, e.NewDescription.Kind)
		if e.NewDescription.SetName != "" {
			k.set = e.NewDescription.SetName
		}
	}}
}

func (k *topologyKinds) last() (string, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kinds) == 0 {
		return "", k.set
	}
	return k.kinds[len(k.kinds)-1], k.set
}

// The driver finds the server in each way a user may connect: as the
// primary of the named replica set, by discovery without a set name, and
// directly; with streaming monitoring (the default) and with polling. Each
// client writes, reads and follows a change stream.
func TestHandshakeConfigurations(t *testing.T) {
	srv := mongotest.New(t, nil)
	base := "mongodb://" + srv.Addr() + "/"
	tests := []struct {
		name string
		opts *options.ClientOptions
		kind string // the driver's topology kind once connected
	}{
		{"replicaSet in the URI", options.Client().ApplyURI(srv.URI()), "ReplicaSetWithPrimary"},
		{"discovery without a set name", options.Client().ApplyURI(base), "ReplicaSetWithPrimary"},
		{"directConnection=true", options.Client().ApplyURI(base + "?directConnection=true"), "Single"},
		{"polling monitoring", options.Client().ApplyURI(srv.URI()).SetServerMonitoringMode(options.ServerMonitoringModePoll), "ReplicaSetWithPrimary"},
		{"stable API", options.Client().ApplyURI(srv.URI()).SetServerAPIOptions(options.ServerAPI(options.ServerAPIVersion1)), "ReplicaSetWithPrimary"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kinds := &topologyKinds{}
			client, err := mongo.Connect(tt.opts.SetServerMonitor(kinds.monitor()).SetServerSelectionTimeout(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			defer client.Disconnect(ctx)
			coll := client.Database("hs").Collection(strings.ReplaceAll(tt.name, " ", "_"))
			cs, err := coll.Watch(ctx, mongo.Pipeline{})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(ctx)
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
				t.Fatal(err)
			}
			if !cs.Next(ctx) {
				t.Fatalf("change stream: %v", cs.Err())
			}
			if id := cs.Current.Lookup("documentKey", "_id").AsInt64(); id != int64(i) {
				t.Errorf("event for _id %d, want %d", id, i)
			}
			var got bson.M
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: i}}).Decode(&got); err != nil {
				t.Fatal(err)
			}
			kind, set := kinds.last()
			if kind != tt.kind {
				t.Errorf("topology kind %q, want %q", kind, tt.kind)
			}
			if tt.kind != "Single" && set != "rs0" {
				t.Errorf("set name %q, want rs0", set)
			}
		})
	}
}
