package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-changestream/changestream/stream"
)

// tally is the check of the demo: every write registers the key its event
// must carry before it is sent, and the consumer marks the keys it sees.
type tally struct {
	mu       sync.Mutex
	expected []string
	seen     map[string]int
	events   int
	wake     chan struct{} // closed and replaced on every event
}

func newTally() *tally {
	return &tally{seen: make(map[string]int), wake: make(chan struct{})}
}

func (t *tally) expect(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expected = append(t.expected, key)
}

// unexpect withdraws the key of a write that failed.
func (t *tally) unexpect(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.expected); n > 0 && t.expected[n-1] == key {
		t.expected = t.expected[:n-1]
	}
}

func (t *tally) saw(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[key]++
	t.events++
	close(t.wake)
	t.wake = make(chan struct{})
}

// waitSeen waits until every expected key was seen, ctx ends or d passes.
func (t *tally) waitSeen(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		done := len(t.lostLocked()) == 0
		wake := t.wake
		t.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-wake:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (t *tally) lostLocked() []string {
	var lost []string
	for _, k := range t.expected {
		if t.seen[k] == 0 {
			lost = append(lost, k)
		}
	}
	return lost
}

func (t *tally) lostKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lostLocked()
}

func (t *tally) summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Writes: len(t.expected), Events: t.events, Lost: len(t.lostLocked())}
	for _, n := range t.seen {
		if n > 1 {
			s.Duplicates += n - 1
		}
	}
	return s
}

// Keys that identify the event of each write.
func insertKey(id int) string  { return fmt.Sprintf("insert #%d", id) }
func updateKey(seq int) string { return fmt.Sprintf("update seq %d", seq) }
func deleteKey(id int) string  { return fmt.Sprintf("delete #%d", id) }

// eventKey returns the key of an event, as the writer registered it.
func eventKey(ev stream.Event[Order]) string {
	id, _ := ev.DocumentKey.Lookup("_id").AsInt64OK()
	switch ev.OperationType {
	case stream.OpInsert:
		return insertKey(int(id))
	case stream.OpUpdate:
		seq, _ := ev.UpdateDescription.UpdatedFields.Lookup("seq").AsInt64OK()
		return updateKey(int(seq))
	case stream.OpDelete:
		return deleteKey(int(id))
	}
	return string(ev.OperationType)
}
