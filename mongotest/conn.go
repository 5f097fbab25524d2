package mongotest

import (
	"context"
	"errors"
	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/codes"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// conn serves one client connection. A reader goroutine reads frames so
// that a client hanging up is noticed at once, even while a getMore or a
// streaming hello waits; requests are handled one at a time in serve.
type conn struct {
	s      *Server
	nc     net.Conn
	id     int64
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	// appName is the client's application name from its handshake, used by
	// failpoints that name one.
	appName string

	out []byte // reply buffer, reused

	// spare is the buffer of the last reply built in place, kept for the
	// next one: a consumer draining a stream gets batch after batch
	// without the server allocating (and the kernel faulting in) 16 MiB
	// each time. serve hands it to replyPool once the connection has been
	// idle for spareIdle. Only serve's goroutine uses it.
	spare *[]byte
}

// spareIdle is how long an idle connection keeps its reply buffer.
const spareIdle = time.Second

// takeReplyBuf returns a buffer for a reply built in place.
func (c *conn) takeReplyBuf() *[]byte {
	if b := c.spare; b != nil {
		c.spare = nil
		return b
	}
	if b, _ := replyPool.Get().(*[]byte); b != nil {
		return b
	}
	return new([]byte)
}

// keepReplyBuf takes back a buffer from takeReplyBuf whose reply was
// written or abandoned.
func (c *conn) keepReplyBuf(b *[]byte) {
	if b == nil || cap(*b) > maxPooledReply {
		return
	}
	*b = (*b)[:0]
	if c.spare != nil {
		putReplyBuf(c.spare)
	}
	c.spare = b
}

func newConn(s *Server, nc net.Conn, id int64) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, nc: nc, id: id, ctx: ctx, cancel: cancel}
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
			frame, err := wire.ReadFrame(c.nc, nil)
			if err != nil {
				var fe *wire.FrameError
				if errors.As(err, &fe) {
					c.s.log.Info("mongotest: closing connection", "conn", c.id, "err", err)
				} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					c.s.log.Debug("mongotest: read", "conn", c.id, "err", err)
				}
				return
			}
			select {
			case frames <- frame:
			case <-c.ctx.Done():
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
		if c.spare != nil {
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
			putReplyBuf(c.spare)
			c.spare = nil
			continue
		case <-c.ctx.Done():
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
				c.s.log.Info("mongotest: closing connection", "conn", c.id, "err", err)
				return
			}
			// A whole but malformed request: answer it with the error.
			c.s.log.Info("mongotest: malformed request", "conn", c.id, "err", err)
			if !c.reply(msg, c.s.errorResult(fe.ReplyError())) {
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

// run dispatches one request. OP_QUERY carries only the handshake on a
// MongoDB 6.0+ server, so other legacy commands get the error a real one
// gives. A panicking handler (a mongotest bug) becomes an InternalError
// reply and a log line instead of crashing the test binary.
func (c *conn) run(msg *wire.Message) (res result) {
	if msg.Legacy {
		if name, _ := bsonutil.FirstKey(msg.Cmd); !isHelloName(name) {
			return c.s.errorResult(codes.Errorf(codes.UnsupportedOpQueryCommand, "Unsupported OP_QUERY command: %s. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal", name))
		}
	}
	if c.s.log.Enabled(c.ctx, slog.LevelDebug) {
		name, _ := bsonutil.FirstKey(msg.Cmd)
		db, _ := msg.Cmd.Lookup("$db").StringValueOK()
		start := time.Now()
		defer func() {
			ok, _ := res.doc.Lookup("ok").DoubleOK()
			c.s.log.Debug("mongotest: command", "conn", c.id, "cmd", name, "db", db, "ok", ok == 1, "took", time.Since(start))
		}()
	}
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("mongotest: panic serving a command", "conn", c.id, "panic", p, "stack", string(debug.Stack()))
			res = c.s.errorResult(codes.Errorf(codes.InternalError, "mongotest: internal error: %v", p))
		}
	}()
	return c.s.dispatch(c, msg)
}

func isHelloName(name string) bool {
	return strings.EqualFold(name, "hello") || strings.EqualFold(name, "isMaster")
}

// reply writes the replies of res to msg. It returns false when the
// connection must be closed.
func (c *conn) reply(msg *wire.Message, res result) bool {
	defer func() { c.release(&res) }()
	if res.closeConn {
		return false
	}
	if msg.OpCode == wiremessage.OpMsg && msg.Flags&wiremessage.MoreToCome != 0 {
		return true // fire-and-forget request: no reply
	}
	if res.doc == nil {
		return true
	}
	responseTo := msg.RequestID
	for {
		reqID := wiremessage.NextRequestID()
		var flags wiremessage.MsgFlag
		if res.next != nil {
			flags = wiremessage.MoreToCome
		}
		var err error
		switch {
		case msg.Legacy:
			c.out = wire.AppendOpReply(c.out[:0], reqID, responseTo, res.doc)
			_, err = c.nc.Write(c.out)
		case len(res.doc) < 64<<10:
			c.out = wire.AppendMsgReply(c.out[:0], reqID, responseTo, flags, res.doc)
			_, err = c.nc.Write(c.out)
		default:
			// A large reply (a batch of events): write the header and the
			// document with one writev instead of copying the document.
			c.out = wire.AppendMsgHeader(c.out[:0], reqID, responseTo, flags, len(res.doc))
			bufs := net.Buffers{c.out, res.doc}
			_, err = bufs.WriteTo(c.nc)
		}
		if err != nil {
			return false
		}
		if cap(c.out) > 1<<20 {
			c.out = nil // do not keep a large buffer per idle connection
		}
		if res.next == nil {
			return true
		}
		// Exhaust: the next reply answers our own previous one.
		responseTo = reqID
		next := res.next
		c.release(&res)
		res = next()
		if res.closeConn || res.doc == nil {
			return false
		}
	}
}

// result is what a command produces.
type result struct {
	doc bsoncore.Document
	// buf, when set, is the pooled buffer doc was built in: release
	// returns it once doc is written.
	buf       *[]byte
	closeConn bool
	// next, when set, produces the next reply of an exhaust stream; the
	// current reply is then sent with moreToCome.
	next func() result
}

// release takes back the reply's buffer, if it was built in place; res.doc
// must not be used afterwards.
func (c *conn) release(res *result) {
	c.keepReplyBuf(res.buf)
	res.buf, res.doc = nil, nil
}
