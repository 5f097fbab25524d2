package mongotest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

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

	// Logger receives one debug line per command and one info line per
	// connection. The zero value discards the logs.
	Logger *slog.Logger
}

// Server is a MongoDB wire-protocol server that behaves like a single-node
// replica set running MongoDB 8.2. Create one with NewServer or New; stop it
// with Close.
type Server struct {
	ln      net.Listener
	addr    string
	setName string
	log     *slog.Logger

	mu        sync.Mutex // guards everything below and the data in db
	conns     map[*conn]struct{}
	closed    bool
	processID bson.ObjectID
	topoCount int64
	topoWake  chan struct{} // closed when the topology version changes
	done      chan struct{} // closed by Close

	db      *engine
	fp      *failPoints
	wg      sync.WaitGroup // the accept loop and every connection goroutine
	nextCID int64

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
		ln:        ln,
		addr:      ln.Addr().String(),
		setName:   setName,
		log:       logger,
		conns:     make(map[*conn]struct{}),
		processID: bson.NewObjectID(),
		topoWake:  make(chan struct{}),
		done:      make(chan struct{}),
		fp:        newFailPoints(),
	}
	s.db = newEngine(opts.HistoryLimit)
	s.db.cursorTimeout = opts.CursorTimeout
	if s.db.cursorTimeout == 0 {
		s.db.cursorTimeout = defaultCursorTimeout
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
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
	s.bumpTopologyLocked()
	conns := s.connsLocked()
	s.mu.Unlock()
	s.ln.Close()
	for _, c := range conns {
		c.close()
	}
	s.db.shutdown()
	s.wg.Wait()
}

// Restart simulates a server restart: every cursor is killed, every
// connection is dropped, and the server reports a new topology process id;
// the data and the change history are kept and the address does not change.
// A driver sees network errors, rediscovers the server and resumes its
// change streams from their resume tokens.
func (s *Server) Restart() {
	// Under the engine lock, no command can see the state between the
	// cursors being killed and the connections being closed.
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.mu.Lock()
	s.processID = bson.NewObjectID()
	s.topoCount = 0
	s.bumpTopologyLocked()
	conns := s.connsLocked()
	s.mu.Unlock()
	s.db.killAllCursorsLocked()
	for _, c := range conns {
		c.close()
	}
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
	s.db.truncateHistory()
}

// ClusterTime returns the time of the latest write (or of server start).
func (s *Server) ClusterTime() bson.Timestamp {
	return s.db.clusterTime()
}

func (s *Server) connsLocked() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// bumpTopologyLocked increments the topology version and wakes streaming
// hello requests.
func (s *Server) bumpTopologyLocked() {
	s.topoCount++
	close(s.topoWake)
	s.topoWake = make(chan struct{})
}

func (s *Server) topologyVersion() (bson.ObjectID, int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.processID, s.topoCount, s.topoWake
}

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
		s.nextCID++
		c := newConn(s, nc, s.nextCID)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.log.Info("mongotest: connection accepted", "conn", c.id, "remote", nc.RemoteAddr().String())
			c.serve()
			s.log.Info("mongotest: connection closed", "conn", c.id)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}
