package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/address"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// textWriter collects what is written and wakes those waiting for a text.
type textWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{} // closed and replaced at each write
}

func newTextWriter() *textWriter { return &textWriter{wake: make(chan struct{})} }

func (w *textWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.wake)
	w.wake = make(chan struct{})
	return len(p), nil
}

func (w *textWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor blocks until the text written holds want n times, or ctx or
// done ends first.
func (w *textWriter) waitFor(t *testing.T, ctx context.Context, done <-chan int, want string, n int) {
	t.Helper()
	for {
		w.mu.Lock()
		got, wake := w.buf.String(), w.wake
		w.mu.Unlock()
		if strings.Count(got, want) >= n {
			return
		}
		select {
		case <-wake:
		case code := <-done:
			t.Fatalf("changetail ended with %d before writing %q", code, want)
		case <-ctx.Done():
			t.Fatalf("changetail did not write %q; it wrote:\n%s", want, got)
		}
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestWaitsForTheServerAtStart: with nothing listening yet, changetail
// says what it waits for, then that it connected, and prints the event.
func TestWaitsForTheServerAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := freeAddr(t)
	since := fmt.Sprint(time.Now().Unix() - 1) // mongotest's cluster times are the clock's
	out, errw := newTextWriter(), newTextWriter()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-uri", "mongodb://" + addr + "/?replicaSet=rs0", "-db", "shop", "-since", since,
			"-limit", "1", "-format", "op"}, out, errw)
	}()
	errw.waitFor(t, ctx, done, "changetail: waiting for the deployment at "+addr+": ", 1)

	srv, err := mongotest.NewServer(&mongotest.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	if _, err := client.Database("shop").Collection("orders").InsertOne(ctx, map[string]int{"_id": 1}); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errw)
	}
	if got := out.String(); got != "insert shop.orders {\"_id\":1}\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(errw.String(), "changetail: connected to "+addr+" RSPrimary after ") {
		t.Errorf("stderr does not say it connected:\n%s", errw)
	}
}

// proxy forwards TCP connections to a server until down, and again after
// up, on the same address.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, addr: freeAddr(t), conns: map[net.Conn]bool{}}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up() {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		p.t.Logf("proxy: %v", err)
	}
	dst.Close()
	src.Close()
}

// down stops listening and closes every connection.
func (p *proxy) down() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestSaysWhenTheDeploymentIsLost: mid-stream, the deployment goes away
// (every connection closed, nothing listening); changetail says it lost it
// and waits, says when it is back, and goes on without losing an event.
func TestSaysWhenTheDeploymentIsLost(t *testing.T) {
	d := newDeployment(t)
	p := newProxy(t, d.srv.Addr())
	since := d.since()
	out, errw := newTextWriter(), newTextWriter()
	done := make(chan int, 1)
	go func() {
		done <- run(d.ctx, []string{"-uri", "mongodb://" + p.addr + "/?directConnection=true", "-db", "shop", "-since", since,
			"-limit", "2", "-format", "op"}, out, errw)
	}()
	d.insert(t, 1)
	out.waitFor(t, d.ctx, done, "\n", 1)

	p.down()
	errw.waitFor(t, d.ctx, done, "changetail: lost the deployment at "+p.addr+"; waiting for it to come back", 1)
	errw.waitFor(t, d.ctx, done, "changetail: still waiting for the deployment at "+p.addr+" (", 1)
	d.insert(t, 2)
	p.up()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errw)
	}
	if got, want := out.String(), "insert shop.orders {\"_id\":1}\ninsert shop.orders {\"_id\":2}\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if !strings.Contains(errw.String(), "changetail: connected to "+p.addr+" ") {
		t.Errorf("stderr does not say the deployment is back:\n%s", errw)
	}
	t.Logf("stderr:\n%s", errw)
}

// TestWaitReporter: what the reporter says for each change the driver
// reports, and what it keeps to itself.
func TestWaitReporter(t *testing.T) {
	topology := func(kinds ...string) *event.TopologyDescriptionChangedEvent {
		e := &event.TopologyDescriptionChangedEvent{}
		for i, k := range kinds {
			e.NewDescription.Servers = append(e.NewDescription.Servers,
				event.ServerDescription{Addr: address.Address(fmt.Sprintf("h%d:27017", i+1)), Kind: k})
		}
		return e
	}
	failed := func(msg string) *event.ServerHeartbeatFailedEvent {
		return &event.ServerHeartbeatFailedEvent{Failure: errors.New(msg)}
	}
	var b strings.Builder
	r := newWaitReporter([]string{"h1:27017", "h2:27017"}, &b, false)
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"connected at once: nothing", func() { r.topologyChanged(topology("RSPrimary", "RSSecondary")) }, ""},
		{"a failed check while connected: nothing", func() { r.checkFailed(failed("timeout")) }, ""},
		{"lost", func() { r.topologyChanged(topology("Unknown", "Unknown")) },
			"changetail: lost the deployment at h1:27017,h2:27017; waiting for it to come back (the stream goes on from where it was)\n"},
		{"a new error", func() { r.checkFailed(failed("connection refused")) },
			"changetail: still waiting for the deployment at h1:27017,h2:27017 (0s): connection refused\n"},
		{"the same error again: nothing", func() { r.checkFailed(failed("connection refused")) }, ""},
		{"a secondary only", func() { r.topologyChanged(topology("RSSecondary", "Unknown")) }, ""},
		{"back", func() { r.topologyChanged(topology("RSSecondary", "RSPrimary")) }, "changetail: connected to h1:27017 RSSecondary, h2:27017 RSPrimary after "},
		{"no primary", func() { r.topologyChanged(topology("RSSecondary", "RSSecondary")) },
			"changetail: waiting for a primary: the deployment has h1:27017 RSSecondary, h2:27017 RSSecondary\n"},
		{"stopped: nothing", func() { r.stop(); r.topologyChanged(topology("Unknown", "Unknown")); r.checkFailed(failed("x")) }, ""},
	}
	for _, st := range steps {
		b.Reset()
		st.do()
		got := b.String()
		if st.name == "back" {
			got = got[:min(len(got), len(st.want))] // then the time it took
		}
		if got != st.want {
			t.Errorf("%s: said %q, want %q", st.name, got, st.want)
		}
	}
}
