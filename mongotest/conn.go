package mongotest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/handler"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// conn serves one client connection. A reader goroutine reads frames so
// that a client hanging up is noticed at once, even while a getMore or a
// streaming hello waits; requests are handled one at a time in serve.
type conn struct {
	s      *Server
	nc     net.Conn
	cancel context.CancelFunc
	once   sync.Once

	// hc is the connection as the handlers see it; only serve's
	// goroutine uses it.
	hc handler.Conn

	out []byte // frame buffer of replies, reused
}

// spareIdle is how long an idle connection keeps its reply buffer.
const spareIdle = time.Second

func newConn(s *Server, nc net.Conn, id int64) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, nc: nc, cancel: cancel, hc: handler.Conn{ID: id, Ctx: ctx}}
}

// close ends the connection; its goroutines return promptly.
func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

func (c *conn) serve() {
	frames := make(chan []byte)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer c.close()
		for {
			frame, err := wire.ReadFrame(c.nc, c.s.frameBudget, func() {
				c.nc.SetReadDeadline(time.Now().Add(c.s.frameTimeout))
			})
			if err == nil {
				// Between messages a client may stay idle as long as it likes.
				err = c.nc.SetReadDeadline(time.Time{})
			}
			if err != nil {
				var fe *wire.FrameError
				var ne net.Error
				if errors.As(err, &fe) {
					c.s.log.Info("mongotest: closing connection", "conn", c.hc.ID, "err", err)
				} else if errors.As(err, &ne) && ne.Timeout() {
					c.s.log.Info("mongotest: closing connection: a message did not arrive whole within FrameTimeout", "conn", c.hc.ID, "timeout", c.s.frameTimeout)
				} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					c.s.log.Debug("mongotest: read", "conn", c.hc.ID, "err", err)
				}
				return
			}
			select {
			case frames <- frame:
			case <-c.hc.Ctx.Done():
				return
			}
		}
	}()
	defer func() {
		// Close first: the reader may be blocked reading the next frame.
		c.close()
		<-readerDone
	}()
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		var idleC <-chan time.Time
		if c.hc.Replies.Holding() {
			if idle == nil {
				idle = time.NewTimer(spareIdle)
			} else {
				idle.Reset(spareIdle)
			}
			idleC = idle.C
		}
		var frame []byte
		select {
		case frame = <-frames:
		case <-idleC:
			c.hc.Replies.Release()
			continue
		case <-c.hc.Ctx.Done():
			return
		}
		if idleC != nil {
			idle.Stop()
		}
		if c.s.frameHook != nil {
			c.s.frameHook(frame)
		}
		msg, err := wire.Parse(frame)
		if err != nil {
			var fe *wire.FrameError
			if msg == nil || !errors.As(err, &fe) || fe.ReplyError() == nil {
				c.s.log.Info("mongotest: closing connection", "conn", c.hc.ID, "err", err)
				return
			}
			// A whole but malformed request: answer it with the error.
			c.s.log.Info("mongotest: malformed request", "conn", c.hc.ID, "err", err)
			if !c.reply(msg, c.s.mux.ErrorResult(fe.ReplyError())) {
				return
			}
			continue
		}
		if !c.handle(msg) {
			return
		}
	}
}

// handle runs one request and writes its replies. It returns false when
// the connection must be closed.
func (c *conn) handle(msg *wire.Message) bool {
	return c.reply(msg, c.run(msg))
}

// run serves one request. A panicking handler (a mongotest bug) becomes
// an InternalError reply and a log line instead of crashing the test
// binary.
func (c *conn) run(msg *wire.Message) (res handler.Result) {
	if c.s.log.Enabled(c.hc.Ctx, slog.LevelDebug) {
		name, _ := bsonutil.FirstKey(msg.Cmd)
		db, _ := msg.Cmd.Lookup("$db").StringValueOK()
		start := time.Now()
		defer func() {
			ok, _ := res.Doc.Lookup("ok").DoubleOK()
			c.s.log.Debug("mongotest: command", "conn", c.hc.ID, "cmd", name, "db", db, "ok", ok == 1, "took", time.Since(start))
		}()
	}
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("mongotest: panic serving a command", "conn", c.hc.ID, "panic", p, "stack", string(debug.Stack()))
			res = c.s.mux.ErrorResult(codes.Errorf(codes.InternalError, "mongotest: internal error: %v", p))
		}
	}()
	return c.s.mux.Serve(&c.hc, msg)
}

// reply writes the replies of res to msg. It returns false when the
// connection must be closed.
func (c *conn) reply(msg *wire.Message, res handler.Result) bool {
	defer func() { c.release(&res) }()
	if res.CloseConn {
		return false
	}
	if msg.OpCode == wiremessage.OpMsg && msg.Flags&wiremessage.MoreToCome != 0 {
		return true // fire-and-forget request: no reply
	}
	if res.Doc == nil {
		return true
	}
	responseTo := msg.RequestID
	for {
		reqID := wiremessage.NextRequestID()
		var flags wiremessage.MsgFlag
		if res.Next != nil {
			flags = wiremessage.MoreToCome
		}
		var err error
		switch {
		case msg.Legacy:
			c.out = wire.AppendOpReply(c.out[:0], reqID, responseTo, res.Doc)
			_, err = c.nc.Write(c.out)
		case len(res.Doc) < 64<<10:
			c.out = wire.AppendMsgReply(c.out[:0], reqID, responseTo, flags, res.Doc)
			_, err = c.nc.Write(c.out)
		default:
			// A large reply (a batch of events): write the header and the
			// document with one writev instead of copying the document.
			c.out = wire.AppendMsgHeader(c.out[:0], reqID, responseTo, flags, len(res.Doc))
			bufs := net.Buffers{c.out, res.Doc}
			_, err = bufs.WriteTo(c.nc)
		}
		if err != nil {
			return false
		}
		if cap(c.out) > 1<<20 {
			c.out = nil // do not keep a large buffer per idle connection
		}
		if res.Next == nil {
			return true
		}
		// Exhaust: the next reply answers our own previous one.
		responseTo = reqID
		next := res.Next
		c.release(&res)
		res = next()
		if res.CloseConn || res.Doc == nil {
			return false
		}
	}
}

// release takes back the reply's buffer, if it was built in place; res.Doc
// must not be used afterwards.
func (c *conn) release(res *handler.Result) {
	c.hc.Replies.Return(res.Buf)
	res.Buf, res.Doc = nil, nil
}
