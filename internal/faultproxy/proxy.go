// Package faultproxy is a TCP proxy on the loopback interface for tests
// that need a server to become unreachable: while the proxy is down, its
// connections are cut and new ones are accepted but never answered, as
// when packets to a host vanish, so that a client waits for its own
// timeouts instead of seeing "connection refused" at once.
package faultproxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from its address to a target address.
// Create one with New and stop it with Close.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{} // client and server ends of every connection
	held  int                   // connections accepted while down, in all
	wake  chan struct{}         // closed and replaced when held grows
	wg    sync.WaitGroup        // the accept loop and the copy goroutines
}

// New starts a proxy on 127.0.0.1 forwarding to target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, wake: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port, to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDown makes the target unreachable (true) or reachable again (false).
// Going down cuts every open connection; while down, new connections are
// accepted and held without an answer until the proxy comes up again or
// closes, when they are cut.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// WaitHeld waits until n connections in all were accepted while the proxy
// was down: the client tried to reach the server that many times.
func (p *Proxy) WaitHeld(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		held, wake := p.held, p.wake
		p.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the proxy, cuts every connection and waits for its
// goroutines.
func (p *Proxy) Close() {
	p.ln.Close()
	p.SetDown(true)
	p.wg.Wait()
}

// track records c unless the proxy's state changed from wantDown; it
// reports whether c was recorded (else c is closed).
func (p *Proxy) track(c net.Conn, wantDown bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down != wantDown {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	if wantDown {
		p.held++
		close(p.wake)
		p.wake = make(chan struct{})
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		// Hold the connection, read and drop what comes, answer nothing:
		// SetDown(false) or Close cuts it.
		if p.track(client, true) {
			_, _ = io.Copy(io.Discard, client)
		}
		client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, false) || !p.track(server, false) {
		client.Close()
		server.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
}
