package mongotest

import (
	"context"
	"fmt"
	"testing"
	"time"

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
			cmd = bsoncore.AppendDocumentElement(cmd, arrayKey(j), d)
		}
		cmd, _ = bsoncore.AppendArrayEnd(cmd, aidx)
		cmd = bsoncore.AppendStringElement(cmd, "$db", "shop")
		cmd, _ = bsoncore.AppendDocumentEnd(cmd, idx)
		res := s.dispatch(c, &message{opcode: wiremessage.OpMsg, cmd: cmd})
		if ok, _ := res.doc.Lookup("ok").DoubleOK(); ok != 1 {
			tb.Fatalf("insert: %s", res.doc)
		}
	}
	return start
}

func benchConn(s *Server) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, id: 1, ctx: ctx, cancel: cancel}
}

// serveAll streams every event of the log from start the way a getMore
// loop does, through dispatch and the reply framing (everything the server
// does but the socket I/O), and calls each with every event.
func serveAll(tb testing.TB, s *Server, start bson.Timestamp, each func(ev bsoncore.Document)) {
	c := benchConn(s)
	defer c.cancel()
	agg := bsoncore.NewDocumentBuilder().
		AppendString("aggregate", "orders").
		AppendArray("pipeline", bsoncore.NewArrayBuilder().AppendDocument(
			bsoncore.NewDocumentBuilder().AppendDocument("$changeStream",
				bsoncore.NewDocumentBuilder().AppendTimestamp("startAtOperationTime", start.T, start.I).Build()).Build()).Build()).
		AppendDocument("cursor", bsoncore.NewDocumentBuilder().Build()).
		AppendString("$db", "shop").Build()
	res := s.dispatch(c, &message{opcode: wiremessage.OpMsg, cmd: agg})
	id, ok := res.doc.Lookup("cursor", "id").Int64OK()
	if !ok || id == 0 {
		tb.Fatalf("aggregate: %s", res.doc)
	}
	getMore := bsoncore.NewDocumentBuilder().
		AppendInt64("getMore", id).AppendString("collection", "orders").
		AppendInt32("maxTimeMS", 0).AppendString("$db", "shop").Build()
	var out []byte
	batchKey := "firstBatch"
	for n := 0; n < benchEvents; batchKey = "nextBatch" {
		if batchKey == "nextBatch" {
			res = s.dispatch(c, &message{opcode: wiremessage.OpMsg, cmd: getMore})
		}
		// What conn.reply does for a large reply before its writev.
		out = appendMsgHeader(out[:0], 1, 2, 0, len(res.doc))
		arr, ok := res.doc.Lookup("cursor", batchKey).ArrayOK()
		if !ok {
			tb.Fatalf("%s: %s", batchKey, res.doc)
		}
		if len(arr) == 5 && batchKey == "nextBatch" {
			tb.Fatalf("empty batch after %d events", n)
		}
		rem := arr[4 : len(arr)-1]
		for len(rem) > 0 {
			var el bsoncore.Element
			el, rem, _ = bsoncore.ReadElement(rem)
			if each != nil {
				each(el.Value().Document())
			}
			n++
		}
	}
	kill := bsoncore.NewDocumentBuilder().AppendString("killCursors", "orders").
		AppendArray("cursors", bsoncore.NewArrayBuilder().AppendInt64(id).Build()).
		AppendString("$db", "shop").Build()
	s.dispatch(c, &message{opcode: wiremessage.OpMsg, cmd: kill})
}

// BenchmarkServeVsDecode compares mongotest's cost of serving an insert
// event (reading the log, rendering the event, building the getMore reply
// and its frame) with the driver's typed decoding of the same event into
// an Event[Order]-like struct. The server must cost at most a quarter of
// the decoding, so that it never limits the library's benchmarks.
func BenchmarkServeVsDecode(b *testing.B) {
	s, err := NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := fillLog(b, s)
	var events []bsoncore.Document
	serveAll(b, s, start, func(ev bsoncore.Document) { events = append(events, ev) })

	var serveNs, decodeNs float64
	b.Run("serve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serveAll(b, s, start, nil)
		}
		serveNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N) / benchEvents
		b.ReportMetric(serveNs, "ns/event")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var ev benchEvent
		for b.Loop() {
			for _, raw := range events {
				ev = benchEvent{}
				if err := bson.Unmarshal(raw, &ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		if ev.FullDocument.Customer == "" || ev.OperationType != "insert" {
			b.Fatalf("decoded %+v", ev)
		}
		decodeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N) / benchEvents
		b.ReportMetric(decodeNs, "ns/event")
	})
	if serveNs == 0 || decodeNs == 0 {
		return // a sub-benchmark was filtered out
	}
	b.Logf("serve %.0f ns/event, decode %.0f ns/event: serve/decode = %.3f", serveNs, decodeNs, serveNs/decodeNs)
	if serveNs > decodeNs/4 {
		b.Errorf("serving an event costs %.0f ns, more than a quarter of decoding it (%.0f ns)", serveNs, decodeNs)
	}
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
