package mongotest_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// pingFrame is an OP_MSG {ping: 1, $db: "admin"}.
func pingFrame() []byte {
	doc := bsoncore.NewDocumentBuilder().AppendInt32("ping", 1).AppendString("$db", "admin").Build()
	idx, b := wiremessage.AppendHeaderStart(nil, 1, 0, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, 0)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, doc...)
	binary.LittleEndian.PutUint32(b[idx:], uint32(len(b)))
	return b
}

// roundTrip sends a ping on nc and reads the reply's header and body.
func roundTrip(t *testing.T, nc net.Conn) {
	t.Helper()
	if _, err := nc.Write(pingFrame()); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		t.Fatalf("reading the ping reply: %v", err)
	}
	if _, err := io.CopyN(io.Discard, nc, int64(binary.LittleEndian.Uint32(hdr[:]))-4); err != nil {
		t.Fatal(err)
	}
}

// waitClosed reads from nc until the server closes it, failing after
// limit.
func waitClosed(t *testing.T, nc net.Conn, limit time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, nc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server did not close the connection within %v", limit)
	}
}

// A client that starts a frame and stops halfway is disconnected after
// Options.FrameTimeout, instead of holding its buffer for ever; a client
// idle between frames is not.
func TestFrameTimeout(t *testing.T) {
	srv := mongotest.New(t, &mongotest.Options{FrameTimeout: 200 * time.Millisecond})
	idle, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	roundTrip(t, idle)

	stalled, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	half := make([]byte, 1000)
	binary.LittleEndian.PutUint32(half, 40<<20)
	if _, err := stalled.Write(half); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, stalled, 10*time.Second)
	// The idle connection outlived the stalled one's timeout and works.
	roundTrip(t, idle)
}

// Options.MaxConnections bounds the open connections: one more is closed
// at once, cleanly, and the others go on working.
func TestMaxConnections(t *testing.T) {
	srv := mongotest.New(t, &mongotest.Options{MaxConnections: 2})
	var open []net.Conn
	defer func() {
		for _, nc := range open {
			nc.Close()
		}
	}()
	for range 2 {
		nc, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, nc)
		roundTrip(t, nc)
	}
	extra, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	waitClosed(t, extra, 10*time.Second)
	for _, nc := range open {
		roundTrip(t, nc)
	}
}

func TestLimitOptionsValidated(t *testing.T) {
	for _, opts := range []*mongotest.Options{{MaxConnections: -1}, {FrameTimeout: -time.Second}} {
		if srv, err := mongotest.NewServer(opts); err == nil {
			srv.Close()
			t.Errorf("NewServer(%+v) accepted a negative limit", *opts)
		}
	}
}
