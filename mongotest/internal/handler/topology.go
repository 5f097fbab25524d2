package handler

import (
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Topology is what the server tells a driver about itself: its address,
// its replica set and its topology version, which changes when the server
// restarts or closes and wakes the streaming hellos waiting on it.
type Topology struct {
	addr, setName string
	started       time.Time // when the server started, for uptime

	mu        sync.Mutex
	processID bson.ObjectID
	counter   int64
	wake      chan struct{} // closed when the version changes
}

// NewTopology returns the topology of a server listening on addr as the
// primary of the replica set setName.
func NewTopology(addr, setName string) *Topology {
	return &Topology{addr: addr, setName: setName, started: time.Now(), processID: bson.NewObjectID(), wake: make(chan struct{})}
}

// Version returns the topology version and a channel closed when it next
// changes.
func (t *Topology) Version() (bson.ObjectID, int64, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.processID, t.counter, t.wake
}

// Changed increments the topology version and wakes streaming hellos.
func (t *Topology) Changed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.changedLocked()
}

// Restarted gives the server a new process id, as a restart does.
func (t *Topology) Restarted() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.processID = bson.NewObjectID()
	t.counter = 0
	t.changedLocked()
}

func (t *Topology) changedLocked() {
	t.counter++
	close(t.wake)
	t.wake = make(chan struct{})
}
