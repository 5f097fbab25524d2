package mongotest_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// frame builds a wire message: header (length filled in), then body.
func frame(op wiremessage.OpCode, body ...[]byte) []byte {
	idx, b := wiremessage.AppendHeaderStart(nil, 7, 0, op)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.LittleEndian.PutUint32(b[idx:], uint32(len(b)))
	return b
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func doc(t *testing.T, d bson.D) []byte {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seq builds a kind-1 section.
func seq(id string, docs ...[]byte) []byte {
	var payload []byte
	payload = append(payload, id...)
	payload = append(payload, 0)
	for _, d := range docs {
		payload = append(payload, d...)
	}
	out := []byte{1}
	out = append(out, le32(uint32(4+len(payload)))...)
	return append(out, payload...)
}

// opQuery builds an OP_QUERY body on ns.
func opQuery(ns string, q []byte) []byte {
	var b []byte
	b = append(b, le32(0)...)
	b = append(b, ns...)
	b = append(b, 0)
	b = append(b, le32(0)...)
	b = append(b, le32(1)...)
	return append(b, q...)
}

// exchange writes raw bytes to the server and returns the reply document,
// or nil when the server closed the connection without replying.
func exchange(t *testing.T, addr string, raw []byte, halfClose bool) bsoncore.Document {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		// The client hangs up in the middle of its frame.
		if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	var hdr [16]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil
		}
		t.Fatalf("reading the reply: %v (a hang is a failure)", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 16 || n > 1<<20 {
		t.Fatalf("reply length %d", n)
	}
	rest := make([]byte, n-16)
	if _, err := io.ReadFull(nc, rest); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(hdr[8:]); got != 7 {
		t.Errorf("reply responseTo = %d, want 7", got)
	}
	switch op := wiremessage.OpCode(binary.LittleEndian.Uint32(hdr[12:])); op {
	case wiremessage.OpMsg:
		d, _, ok := bsoncore.ReadDocument(rest[5:])
		if !ok {
			t.Fatal("bad OP_MSG reply")
		}
		return d
	case wiremessage.OpReply:
		d, _, ok := bsoncore.ReadDocument(rest[20:])
		if !ok {
			t.Fatal("bad OP_REPLY reply")
		}
		return d
	default:
		t.Fatalf("reply opcode %v", op)
	}
	return nil
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestMalformedFrames(t *testing.T) {
	check := checkGoroutines(t)
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Close()
		check()
	}()
	ping := doc(t, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	insert := doc(t, bson.D{{Key: "insert", Value: "c"}, {Key: "$db", Value: "db"}})
	badBSON := []byte{12, 0, 0, 0, 0x02, 'a', 0, 100, 0, 0, 0, 0} // a string longer than its document
	msg := func(flags uint32, sections ...[]byte) []byte {
		return frame(wiremessage.OpMsg, append([][]byte{le32(flags)}, sections...)...)
	}
	body := func(d []byte) []byte { return append([]byte{0}, d...) }
	tests := []struct {
		name      string
		raw       []byte
		halfClose bool
		code      int32 // 0: the connection must be closed without a reply
		ok        bool  // the reply is ok: 1
	}{
		{name: "valid ping (control)", raw: msg(0, body(ping)), ok: true},
		{name: "huge length", raw: append(le32(1<<30), make([]byte, 12)...)},
		{name: "negative length", raw: append(le32(0xFFFFFFF0), make([]byte, 12)...)},
		{name: "length below a header", raw: append(le32(8), make([]byte, 12)...)},
		{name: "truncated frame then hang-up", raw: msg(0, body(ping))[:20], halfClose: true},
		{name: "truncated header then hang-up", raw: []byte{40, 0, 0}, halfClose: true},
		{name: "unknown opcode", raw: frame(wiremessage.OpCode(9999), body(ping))},
		{name: "OP_COMPRESSED", raw: frame(wiremessage.OpCompressed, make([]byte, 16))},
		{name: "OP_MSG without flags", raw: frame(wiremessage.OpMsg, []byte{0, 0})},
		{name: "OP_MSG invalid BSON body", raw: msg(0, body(badBSON)), code: 22},
		{name: "OP_MSG body longer than the frame", raw: msg(0, body(ping[:len(ping)-3])), code: 22},
		{name: "OP_MSG unknown section kind", raw: msg(0, body(ping), append([]byte{7}, ping...)), code: 40432},
		{name: "OP_MSG two bodies", raw: msg(0, body(ping), body(ping)), code: 40430},
		{name: "OP_MSG without body", raw: msg(0, seq("documents", ping)), code: 40587},
		{name: "OP_MSG sequence too long", raw: msg(0, body(insert), append([]byte{1}, le32(1000)...)), code: 22},
		{name: "OP_MSG sequence with invalid BSON", raw: msg(0, body(insert), seq("documents", badBSON)), code: 22},
		{name: "OP_MSG sequence duplicating a body field", raw: msg(0, body(ping), seq("ping", ping)), code: 40431},
		{name: "OP_MSG duplicate sequences", raw: msg(0, body(insert), seq("documents", ping), seq("documents", ping)), code: 40431},
		{name: "OP_MSG unknown required flag", raw: msg(1<<4, body(ping)), code: 223},
		{name: "OP_MSG checksum flag without checksum", raw: msg(1, []byte{0, 5, 0})},
		{name: "OP_MSG with checksum", raw: msg(1, body(ping), le32(0xdeadbeef)), ok: true},
		{name: "OP_MSG empty command", raw: msg(0, body([]byte{5, 0, 0, 0, 0})), code: 9},
		{name: "OP_MSG without $db", raw: msg(0, body(doc(t, bson.D{{Key: "ping", Value: 1}}))), code: 9},
		{name: "OP_MSG unknown command", raw: msg(0, body(doc(t, bson.D{{Key: "frobnicate", Value: 1}, {Key: "$db", Value: "x"}}))), code: 59},
		{name: "OP_QUERY hello (control)", raw: frame(wiremessage.OpQuery, opQuery("admin.$cmd", doc(t, bson.D{{Key: "isMaster", Value: 1}}))), ok: true},
		{name: "OP_QUERY on a collection", raw: frame(wiremessage.OpQuery, opQuery("db.coll", doc(t, bson.D{{Key: "a", Value: 1}}))), code: 5739101},
		{name: "OP_QUERY command other than hello", raw: frame(wiremessage.OpQuery, opQuery("admin.$cmd", doc(t, bson.D{{Key: "ping", Value: 1}}))), code: 352},
		{name: "OP_QUERY invalid BSON", raw: frame(wiremessage.OpQuery, opQuery("admin.$cmd", badBSON)), code: 22},
		{name: "OP_QUERY truncated", raw: frame(wiremessage.OpQuery, le32(0), []byte("admin"))},
	}
	client := connect(t, srv.URI())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply := exchange(t, srv.Addr(), tc.raw, tc.halfClose)
			switch {
			case tc.ok:
				if reply == nil {
					t.Fatal("connection closed, want an ok reply")
				}
				if ok, _ := reply.Lookup("ok").DoubleOK(); ok != 1 {
					t.Fatalf("reply %s, want ok: 1", reply)
				}
			case tc.code != 0:
				if reply == nil {
					t.Fatalf("connection closed, want error %d", tc.code)
				}
				code, _ := reply.Lookup("code").Int32OK()
				if code != tc.code {
					t.Fatalf("reply %s, want code %d", reply, tc.code)
				}
				if _, ok := reply.Lookup("$clusterTime").DocumentOK(); !ok {
					t.Errorf("error reply %s has no $clusterTime", reply)
				}
			default:
				if reply != nil {
					t.Fatalf("reply %s, want the connection closed", reply)
				}
			}
			// The server still serves a driver.
			if err := client.Ping(t.Context(), nil); err != nil {
				t.Fatalf("driver ping after the bad frame: %v", err)
			}
		})
	}
}
