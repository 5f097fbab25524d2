package handler

import (
	"sync"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
)

// ReplyBuffers keeps the buffer of a connection's last reply built in
// place (a batch of events), for the next one: a consumer draining a
// stream gets batch after batch without the server allocating (and the
// kernel faulting in) 16 MiB each time. Its owner calls Release once the
// connection has been idle a while, which hands the buffer to a pool the
// garbage collector may empty, so that an idle connection pins no memory.
// Its zero value holds no buffer; only the connection's goroutine uses it.
type ReplyBuffers struct {
	spare *[]byte
}

// replyPool holds the buffers of idle connections.
var replyPool sync.Pool // of *[]byte

// maxPooledReply bounds the buffers kept for reuse: a batch reply is at
// most about 16 MiB, which appending may have doubled.
const maxPooledReply = 2*bsonutil.MaxObjectSize + 64<<10

// take returns a buffer for a reply built in place.
func (b *ReplyBuffers) take() *[]byte {
	if buf := b.spare; buf != nil {
		b.spare = nil
		return buf
	}
	if buf, _ := replyPool.Get().(*[]byte); buf != nil {
		return buf
	}
	return new([]byte)
}

// Return takes back a buffer of a reply that was written or abandoned
// (Result.Buf); nil is ignored.
func (b *ReplyBuffers) Return(buf *[]byte) {
	if buf == nil || cap(*buf) > maxPooledReply {
		return
	}
	*buf = (*buf)[:0]
	if b.spare != nil {
		pool(b.spare)
	}
	b.spare = buf
}

// Holding reports whether a buffer is kept.
func (b *ReplyBuffers) Holding() bool { return b.spare != nil }

// Release hands the kept buffer to the pool.
func (b *ReplyBuffers) Release() {
	if b.spare != nil {
		pool(b.spare)
		b.spare = nil
	}
}

func pool(buf *[]byte) {
	if cap(*buf) <= maxPooledReply {
		*buf = (*buf)[:0]
		replyPool.Put(buf)
	}
}
