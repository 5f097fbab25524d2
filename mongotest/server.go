package mongotest

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/engine"
	"github.com/go-changestream/changestream/mongotest/internal/failpoint"
	"github.com/go-changestream/changestream/mongotest/internal/handler"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Options configures a Server. A nil *Options means all defaults.
type Options struct {
	// Addr is the TCP address to listen on. The zero value is
	// "127.0.0.1:0": loopback, on a free port.
	Addr string

	// ReplicaSet is the replica-set name the server reports. The zero value
	// is "rs0".
	ReplicaSet string

	// HistoryLimit bounds how many change-log entries the server keeps, as a
	// real oplog is bounded by its size. Older entries are dropped, and
	// change streams that need them fail with ChangeStreamHistoryLost (286).
	// The zero value keeps every entry.
	HistoryLimit int

	// CursorTimeout is how long a cursor may go unused before the server
	// kills it, as a real server does after cursorTimeoutMillis: the
	// cursors of a client that went away without closing them do not stay
	// open for ever. A later getMore on it fails with CursorNotFound (43),
	// which a driver's change stream resumes from. The zero value is ten
	// minutes, a real server's default; a negative value never times out.
	CursorTimeout time.Duration

	// IdleWriteInterval is how often an idle server advances its cluster
	// time, as a replica set's periodic no-op writer does: when nothing
	// was written for that long, the cluster time (and with it the
	// postBatchResumeToken of idle change streams) moves on, so that a
	// consumer's lag can be measured while nothing happens. The zero value
	// is ten seconds, a real replica set's period; a negative value turns
	// the writer off.
	IdleWriteInterval time.Duration

	// MaxConnections bounds the client connections open at once; a
	// connection beyond it is closed as soon as it is accepted. The zero
	// value is 1024; a negative value is an error.
	MaxConnections int

	// FrameTimeout is how long a client may take to send the rest of a
	// message once its first bytes arrived; a connection that stops
	// halfway through a message is closed after it. Unfinished messages
	// also share a bound on the memory they hold (4 × 48 MB, the largest
	// message), beyond which the connection is closed. The zero value is
	// 30 seconds; a negative value is an error.
	FrameTimeout time.Duration

	// Logger receives one debug line per command and one info line per
	// connection. The zero value discards the logs.
	Logger *slog.Logger
}

// defaultIdleWriteInterval is a replica set's periodic no-op write period.
const defaultIdleWriteInterval = 10 * time.Second

// Defaults of the connection limits.
const (
	defaultMaxConnections = 1024
	defaultFrameTimeout   = 30 * time.Second
	// frameMemory bounds the bytes buffered in unfinished messages across
	// every connection of a server.
	frameMemory = 4 * wire.MaxMessageSize
)

// Server is a MongoDB wire-protocol server that behaves like a single-node
// replica set running MongoDB 8.2. Create one with NewServer or New; stop it
// with Close.
type Server struct {
	ln      net.Listener
	addr    string
	setName string
	log     *slog.Logger

	engine *engine.Engine
	fp     *failpoint.Set
	topo   *handler.Topology
	mux    *handler.Mux

	mu      sync.Mutex // guards conns, closed and nextCID
	conns   map[*conn]struct{}
	closed  bool
	nextCID int64
	done    chan struct{}  // closed by Close
	wg      sync.WaitGroup // the accept loop and every connection goroutine

	maxConns     int
	frameTimeout time.Duration
	frameBudget  *wire.Budget

	// frameHook, when set before the first connection, sees every frame
	// the server reads (tests record fuzz seeds with it).
	frameHook func(frame []byte)
}

// NewServer starts a server listening on opts.Addr (by default a free port
// on 127.0.0.1). The caller must Close it.
func NewServer(opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.HistoryLimit < 0 {
		return nil, fmt.Errorf("mongotest: HistoryLimit %d is negative", opts.HistoryLimit)
	}
	if opts.MaxConnections < 0 {
		return nil, fmt.Errorf("mongotest: MaxConnections %d is negative", opts.MaxConnections)
	}
	if opts.FrameTimeout < 0 {
		return nil, fmt.Errorf("mongotest: FrameTimeout %v is negative", opts.FrameTimeout)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	setName := opts.ReplicaSet
	if setName == "" {
		setName = "rs0"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mongotest: listen: %w", err)
	}
	s := &Server{
		ln:      ln,
		addr:    ln.Addr().String(),
		setName: setName,
		log:     logger,
		engine:  engine.New(opts.HistoryLimit, opts.CursorTimeout),
		fp:      &failpoint.Set{},
		topo:    handler.NewTopology(ln.Addr().String(), setName),
		conns:   make(map[*conn]struct{}),

		maxConns:     cmp.Or(opts.MaxConnections, defaultMaxConnections),
		frameTimeout: cmp.Or(opts.FrameTimeout, defaultFrameTimeout),
		frameBudget:  wire.NewBudget(frameMemory),
		done:         make(chan struct{}),
	}
	s.mux = handler.NewMux(s.engine, s.fp, s.topo)
	s.wg.Add(1)
	go s.acceptLoop()
	idle := opts.IdleWriteInterval
	if idle == 0 {
		idle = defaultIdleWriteInterval
	}
	if idle > 0 {
		s.wg.Add(1)
		go s.idleWriter(idle)
	}
	return s, nil
}

// idleWriter advances the cluster time every interval in which nothing
// was written, until Close.
func (s *Server) idleWriter(interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.engine.NoopIfIdle(interval)
		}
	}
}

// New starts a server for the test tb and closes it when the test ends. It
// fails the test if the server cannot start.
func New(tb testing.TB, opts *Options) *Server {
	tb.Helper()
	s, err := NewServer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// URI returns a connection string for the server, such as
// "mongodb://127.0.0.1:40123/?replicaSet=rs0". The driver discovers the
// server as the primary of that replica set.
func (s *Server) URI() string {
	return fmt.Sprintf("mongodb://%s/?replicaSet=%s", s.addr, s.setName)
}

// Close stops the server: it stops listening, closes every connection and
// waits for every goroutine the server started. It is safe to call more
// than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	close(s.done)
	conns := s.connsLocked()
	s.mu.Unlock()
	s.topo.Changed()
	s.ln.Close()
	for _, c := range conns {
		c.close()
	}
	s.engine.Shutdown()
	s.wg.Wait()
}

// Restart simulates a server restart: every cursor is killed, every
// connection is dropped, and the server reports a new topology process id;
// the data and the change history are kept and the address does not change.
// A driver sees network errors, rediscovers the server and resumes its
// change streams from their resume tokens.
func (s *Server) Restart() {
	// The engine runs the drop while no command can run, so that none
	// sees the cursors killed and the connections still open.
	s.engine.Restart(func() {
		s.topo.Restarted()
		s.DropConnections()
	})
}

// DropConnections closes every open client connection, as a network fault
// would. A getMore waiting on a dropped connection ends at once. Cursors
// stay open, as on a real server: the driver, which treats the network
// error as resumable, kills the old cursor and resumes its change stream on
// a new connection.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := s.connsLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// TruncateHistory drops every change-log entry written so far, as if the
// oplog had rolled over. A change stream that has not yet seen them can no
// longer resume and fails with ChangeStreamHistoryLost (286).
func (s *Server) TruncateHistory() {
	s.engine.TruncateHistory()
}

// ClusterTime returns the time of the latest write (or of server start).
func (s *Server) ClusterTime() bson.Timestamp {
	return s.engine.ClusterTime()
}

func (s *Server) connsLocked() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// OpenCursors returns how many cursors are open on the server: change
// streams and unfinished find results. A test can check that a consumer
// closed its stream.
func (s *Server) OpenCursors() int { return s.engine.OpenCursors() }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (for example too many open files): back off.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			s.log.Warn("mongotest: accept", "err", err)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		if len(s.conns) >= s.maxConns {
			s.mu.Unlock()
			s.log.Warn("mongotest: too many connections, closing the new one", "max", s.maxConns, "remote", nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		s.nextCID++
		c := newConn(s, nc, s.nextCID)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.log.Info("mongotest: connection accepted", "conn", c.hc.ID, "remote", nc.RemoteAddr().String())
			c.serve()
			s.log.Info("mongotest: connection closed", "conn", c.hc.ID)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}
