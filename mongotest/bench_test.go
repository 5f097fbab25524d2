package mongotest

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/go-changestream/changestream/mongotest/internal/bsonutil"
	"github.com/go-changestream/changestream/mongotest/internal/handler"
	"github.com/go-changestream/changestream/mongotest/internal/wire"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/wiremessage"
)

// benchEvents is how many insert events the benchmarks stream.
const benchEvents = 100_000

type benchItem struct {
	SKU   string  `bson:"sku"`
	Qty   int32   `bson:"qty"`
	Price float64 `bson:"price"`
}

// benchOrder is the ~300-byte document the benchmarks insert.
type benchOrder struct {
	ID        bson.ObjectID `bson:"_id"`
	Customer  string        `bson:"customer"`
	Status    string        `bson:"status"`
	Total     float64       `bson:"total"`
	Items     []benchItem   `bson:"items"`
	CreatedAt time.Time     `bson:"createdAt"`
	Note      string        `bson:"note"`
}

// benchEvent is what a consumer decodes: the fields of Event[Order].
type benchEvent struct {
	ID            bson.Raw       `bson:"_id"`
	OperationType string         `bson:"operationType"`
	ClusterTime   bson.Timestamp `bson:"clusterTime"`
	WallTime      time.Time      `bson:"wallTime"`
	NS            struct {
		DB   string `bson:"db"`
		Coll string `bson:"coll"`
	} `bson:"ns"`
	DocumentKey struct {
		ID bson.ObjectID `bson:"_id"`
	} `bson:"documentKey"`
	FullDocument benchOrder `bson:"fullDocument"`
}

func benchOrderDoc(i int) benchOrder {
	return benchOrder{
		ID:       bson.NewObjectID(),
		Customer: fmt.Sprintf("c%06d@example.com", i),
		Status:   "paid",
		Total:    123.45,
		Items: []benchItem{
			{SKU: "SKU-0001-BLUE-XL", Qty: 2, Price: 19.99},
			{SKU: "SKU-0002-RED-M", Qty: 1, Price: 42.5},
			{SKU: "SKU-0003-GREEN-S", Qty: 3, Price: 13.66},
		},
		CreatedAt: time.Unix(1_700_000_000+int64(i), 0),
		Note:      "ring twice",
	}
}

// fillLog inserts benchEvents orders into shop.orders through the insert
// handler and returns the cluster time before the first one.
func fillLog(tb testing.TB, s *Server) bson.Timestamp {
	tb.Helper()
	start := s.ClusterTime()
	c := benchConn(s)
	const batch = 1000
	for i := 0; i < benchEvents; i += batch {
		idx, cmd := bsoncore.AppendDocumentStart(nil)
		cmd = bsoncore.AppendStringElement(cmd, "insert", "orders")
		aidx, cmd := bsoncore.AppendArrayElementStart(cmd, "documents")
		for j := 0; j < batch; j++ {
			d, err := bson.Marshal(benchOrderDoc(i + j))
			if err != nil {
				tb.Fatal(err)
			}
			if i == 0 && j == 0 && (len(d) < 280 || len(d) > 330) {
				tb.Fatalf("order document is %d bytes, want about 300", len(d))
			}
			cmd = bsoncore.AppendDocumentElement(cmd, bsonutil.ArrayKey(j), d)
		}
		cmd, _ = bsoncore.AppendArrayEnd(cmd, aidx)
		cmd = bsoncore.AppendStringElement(cmd, "$db", "shop")
		cmd, _ = bsoncore.AppendDocumentEnd(cmd, idx)
		res := s.mux.Serve(&c.hc, &wire.Message{OpCode: wiremessage.OpMsg, Cmd: cmd})
		if ok, _ := res.Doc.Lookup("ok").DoubleOK(); ok != 1 {
			tb.Fatalf("insert: %s", res.Doc)
		}
	}
	return start
}

func benchConn(s *Server) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, cancel: cancel, hc: handler.Conn{ID: 1, Ctx: ctx}}
}

// sinkConn is the client end as the server sees it: writes succeed and are
// counted. It keeps the slices of the last reply (header and body, or the
// whole frame) for the caller to read before the next request; they alias
// the server's reply buffers, which is acceptable only in this benchmark.
type sinkConn struct {
	net.Conn // nil: only Write, Close and the address methods are called
	parts    [][]byte
	written  int64
}

func (s *sinkConn) Write(p []byte) (int, error) {
	s.parts = append(s.parts, p)
	s.written += int64(len(p))
	return len(p), nil
}

func (s *sinkConn) Close() error { return nil }

// lastReply returns the body document of the last reply written.
func (s *sinkConn) lastReply(tb testing.TB) bsoncore.Document {
	tb.Helper()
	switch len(s.parts) {
	case 1:
		return s.parts[0][wire.MsgHeaderLen:]
	case 2:
		return s.parts[1]
	}
	tb.Fatalf("reply written in %d parts", len(s.parts))
	return nil
}

// newSinkConn returns a server connection whose replies go to a sinkConn.
// Like a driver's pooled connection, it serves stream after stream.
func newSinkConn(s *Server) (*conn, *sinkConn) {
	sink := &sinkConn{}
	c := benchConn(s)
	c.nc = sink
	return c, sink
}

// serveAll streams every event of the log from start the way a driver's
// getMore loop does, through c.handle: dispatch, reading the log,
// rendering the events, building the reply and writing its frame to the
// sink. That is everything the server does per event except the kernel's
// socket copy. It returns the number of bytes written. When each is set it
// is called with every event and the events are counted; without it the
// stream is drained until a getMore returns an empty batch, and reading
// the replies costs the caller next to nothing.
func serveAll(tb testing.TB, c *conn, sink *sinkConn, start bson.Timestamp, each func(ev bsoncore.Document)) int64 {
	written := sink.written
	send := func(cmd bsoncore.Document) bsoncore.Document {
		sink.parts = sink.parts[:0]
		if !c.handle(&wire.Message{OpCode: wiremessage.OpMsg, RequestID: 1, Cmd: cmd}) {
			tb.Fatalf("connection closed by %s", cmd)
		}
		return sink.lastReply(tb)
	}
	agg := bsoncore.NewDocumentBuilder().
		AppendString("aggregate", "orders").
		AppendArray("pipeline", bsoncore.NewArrayBuilder().AppendDocument(
			bsoncore.NewDocumentBuilder().AppendDocument("$changeStream",
				bsoncore.NewDocumentBuilder().AppendTimestamp("startAtOperationTime", start.T, start.I).Build()).Build()).Build()).
		AppendDocument("cursor", bsoncore.NewDocumentBuilder().Build()).
		AppendString("$db", "shop").Build()
	reply := send(agg)
	id, ok := reply.Lookup("cursor", "id").Int64OK()
	if !ok || id == 0 {
		tb.Fatalf("aggregate: %s", reply)
	}
	getMore := bsoncore.NewDocumentBuilder().
		AppendInt64("getMore", id).AppendString("collection", "orders").
		AppendInt32("maxTimeMS", 0).AppendString("$db", "shop").Build()
	n := 0
	for batchKey := "firstBatch"; ; batchKey = "nextBatch" {
		if batchKey == "nextBatch" {
			reply = send(getMore)
		}
		arr, ok := reply.Lookup("cursor", batchKey).ArrayOK()
		if !ok {
			tb.Fatalf("%s: %s", batchKey, reply)
		}
		if len(arr) == 5 {
			if batchKey == "nextBatch" {
				break // caught up
			}
			tb.Fatalf("empty first batch")
		}
		if each == nil {
			continue
		}
		rem := arr[4 : len(arr)-1]
		for len(rem) > 0 {
			var el bsoncore.Element
			el, rem, _ = bsoncore.ReadElement(rem)
			each(el.Value().Document())
			n++
		}
	}
	if each != nil && n != benchEvents {
		tb.Fatalf("served %d events, want %d", n, benchEvents)
	}
	kill := bsoncore.NewDocumentBuilder().AppendString("killCursors", "orders").
		AppendArray("cursors", bsoncore.NewArrayBuilder().AppendInt64(id).Build()).
		AppendString("$db", "shop").Build()
	send(kill)
	return sink.written - written
}

// decodeAll decodes every event as a consumer of Event[Order] does.
func decodeAll(tb testing.TB, events []bsoncore.Document) {
	var ev benchEvent
	for _, raw := range events {
		ev = benchEvent{}
		if err := bson.Unmarshal(raw, &ev); err != nil {
			tb.Fatal(err)
		}
	}
	if ev.FullDocument.Customer == "" || ev.OperationType != "insert" {
		tb.Fatalf("decoded %+v", ev)
	}
}

// BenchmarkServeVsDecode compares mongotest's cost of serving an insert
// event (reading the log, rendering the event, building the getMore reply
// and writing its frame) with the driver's typed decoding of the same
// event into an Event[Order]-like struct. The server must cost at most a
// quarter of the decoding, so that it never limits the library's
// benchmarks.
//
// The serve and decode sub-benchmarks report each side's time and
// allocations per event. The ratio sub-benchmark, the one that enforces
// the requirement, alternates the two within each iteration (after a
// garbage collection, so neither pays for the other's garbage), which
// keeps the comparison fair on a machine shared with other work.
func BenchmarkServeVsDecode(b *testing.B) {
	s, err := NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := fillLog(b, s)
	c, sink := newSinkConn(s)
	defer c.cancel()
	var events []bsoncore.Document
	wantBytes := serveAll(b, c, sink, start, func(ev bsoncore.Document) {
		events = append(events, append(bsoncore.Document(nil), ev...))
	})
	serve := func(b *testing.B) {
		if got := serveAll(b, c, sink, start, nil); got != wantBytes {
			b.Fatalf("served %d bytes, want %d", got, wantBytes)
		}
	}

	b.Run("serve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeAll(b, events)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	})
	b.Run("ratio", func(b *testing.B) {
		var serveDur, decodeDur time.Duration
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			t0 := time.Now()
			serve(b)
			serveDur += time.Since(t0)
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			t0 = time.Now()
			decodeAll(b, events)
			decodeDur += time.Since(t0)
		}
		serveNs := float64(serveDur.Nanoseconds()) / float64(b.N) / benchEvents
		decodeNs := float64(decodeDur.Nanoseconds()) / float64(b.N) / benchEvents
		b.ReportMetric(serveNs, "serve-ns/event")
		b.ReportMetric(decodeNs, "decode-ns/event")
		b.ReportMetric(serveNs/decodeNs, "serve/decode")
		b.Logf("serve %.0f ns/event, decode %.0f ns/event: serve/decode = %.3f (%d iterations)", serveNs, decodeNs, serveNs/decodeNs, b.N)
		if serveNs > decodeNs/4 {
			b.Errorf("serving an event costs %.0f ns, more than a quarter of decoding it (%.0f ns)", serveNs, decodeNs)
		}
	})
}

// BenchmarkDriverDrain drains benchEvents insert events with a raw driver
// change stream over TCP, as a consumer would.
func BenchmarkDriverDrain(b *testing.B) {
	s, err := NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := fillLog(b, s)
	client, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	coll := client.Database("shop").Collection("orders")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cs, err := coll.Watch(ctx, mongo.Pipeline{}, options.ChangeStream().SetStartAtOperationTime(&start))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < benchEvents; n++ {
			if !cs.Next(ctx) {
				b.Fatalf("Next after %d events: %v", n, cs.Err())
			}
		}
		if err := cs.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*benchEvents/b.Elapsed().Seconds(), "events/s")
}

// idleCursorServer is a server with n idle change-stream cursors open
// on shop.orders, and a connection to send commands to it directly.
type idleCursorServer struct {
	s    *Server
	c    *conn
	sink *sinkConn
	// stream is one more cursor, which the getMore benchmark reads.
	stream int64
	// opened are the cursors the aggregate benchmark opened.
	opened []int64
}

func newIdleCursorServer(b *testing.B, n int) *idleCursorServer {
	s, err := NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	c, sink := newSinkConn(s)
	b.Cleanup(c.cancel)
	x := &idleCursorServer{s: s, c: c, sink: sink}
	for range n {
		x.aggregate(b)
	}
	x.stream, x.opened = x.opened[0], nil
	if got := s.OpenCursors(); got != n {
		b.Fatalf("%d cursors open, want %d", got, n)
	}
	return x
}

var (
	idleAggregate = bsoncore.NewDocumentBuilder().
		AppendString("aggregate", "orders").
		AppendArray("pipeline", bsoncore.NewArrayBuilder().AppendDocument(
			bsoncore.NewDocumentBuilder().AppendDocument("$changeStream", bsoncore.NewDocumentBuilder().Build()).Build()).Build()).
		AppendDocument("cursor", bsoncore.NewDocumentBuilder().Build()).
		AppendString("$db", "shop").Build()
)

func (x *idleCursorServer) send(b *testing.B, cmd bsoncore.Document) bsoncore.Document {
	x.sink.parts = x.sink.parts[:0]
	if !x.c.handle(&wire.Message{OpCode: wiremessage.OpMsg, RequestID: 1, Cmd: cmd}) {
		b.Fatalf("connection closed by %s", cmd)
	}
	return x.sink.lastReply(b)
}

// aggregate opens one more change stream.
func (x *idleCursorServer) aggregate(b *testing.B) {
	reply := x.send(b, idleAggregate)
	id, ok := reply.Lookup("cursor", "id").Int64OK()
	if !ok || id == 0 {
		b.Fatalf("aggregate: %s", reply)
	}
	x.opened = append(x.opened, id)
}

// getMore reads the stream, which has no event: an empty batch at once.
func (x *idleCursorServer) getMore(b *testing.B) {
	cmd := bsoncore.NewDocumentBuilder().
		AppendInt64("getMore", x.stream).AppendString("collection", "orders").
		AppendInt32("maxTimeMS", 0).AppendString("$db", "shop").Build()
	reply := x.send(b, cmd)
	if id, _ := reply.Lookup("cursor", "id").Int64OK(); id != x.stream {
		b.Fatalf("getMore: %s", reply)
	}
}

// killOpened closes the cursors aggregate opened, so that the number of
// open cursors stays what the benchmark says.
func (x *idleCursorServer) killOpened(b *testing.B) {
	if len(x.opened) == 0 {
		return
	}
	arr := bsoncore.NewArrayBuilder()
	for _, id := range x.opened {
		arr.AppendInt64(id)
	}
	x.send(b, bsoncore.NewDocumentBuilder().AppendString("killCursors", "orders").
		AppendArray("cursors", arr.Build()).AppendString("$db", "shop").Build())
	x.opened = x.opened[:0]
}

// BenchmarkIdleCursors measures aggregate (opening a change stream) and
// getMore (an empty batch) with 10 and with 100 000 idle change-stream
// cursors open: a cursor operation must not scan the cursor table, so the
// cost with 100 000 stays within twice the cost with 10. The ratio
// sub-benchmark alternates the two servers within each iteration, which
// keeps the comparison fair on a shared machine.
func BenchmarkIdleCursors(b *testing.B) {
	small, large := newIdleCursorServer(b, 10), newIdleCursorServer(b, 100_000)
	const batch = 500 // operations between two killOpened
	ops := map[string]func(x *idleCursorServer, b *testing.B){
		"aggregate": (*idleCursorServer).aggregate,
		"getMore":   (*idleCursorServer).getMore,
	}
	for _, op := range []string{"aggregate", "getMore"} {
		for _, x := range []*idleCursorServer{small, large} {
			b.Run(fmt.Sprintf("%s/cursors=%d", op, x.s.OpenCursors()), func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					ops[op](x, b)
					if n++; n%batch == 0 {
						b.StopTimer()
						x.killOpened(b)
						b.StartTimer()
					}
				}
				b.StopTimer()
				x.killOpened(b)
			})
		}
	}
	b.Run("ratio", func(b *testing.B) {
		var took [2][2]time.Duration // [op][server]
		for b.Loop() {
			for i, op := range []string{"aggregate", "getMore"} {
				for j, x := range []*idleCursorServer{small, large} {
					t0 := time.Now()
					for range batch {
						ops[op](x, b)
					}
					took[i][j] += time.Since(t0)
					b.StopTimer()
					x.killOpened(b)
					b.StartTimer()
				}
			}
		}
		aggRatio := float64(took[0][1]) / float64(took[0][0])
		getMoreRatio := float64(took[1][1]) / float64(took[1][0])
		b.ReportMetric(aggRatio, "aggregate-100k/10")
		b.ReportMetric(getMoreRatio, "getMore-100k/10")
		b.Logf("100 000 idle cursors vs 10: aggregate %.2fx, getMore %.2fx (%d iterations of %d operations)", aggRatio, getMoreRatio, b.N, batch)
		if aggRatio > 2 || getMoreRatio > 2 {
			b.Errorf("with 100 000 idle cursors an operation costs more than twice as much as with 10: aggregate %.2fx, getMore %.2fx", aggRatio, getMoreRatio)
		}
	})
}
