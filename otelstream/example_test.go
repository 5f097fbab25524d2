package otelstream_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-changestream/changestream/mongotest"
	"github.com/go-changestream/changestream/otelstream"
	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Register a stream's instruments with a MeterProvider, and serve its
// health check for a readiness probe. Here the provider is the SDK's with a
// manual reader; in a service it has the exporter of your choice.
func ExampleRegister() {
	srv, err := mongotest.NewServer(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	ctx := context.Background()
	orders := client.Database("shop").Collection("orders")

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)

	s, err := stream.Watch[bson.Raw](ctx, orders, nil, &stream.Options{Name: "orders", Store: &stream.MemoryStore{}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	reg, err := otelstream.Register(provider, s, &otelstream.Options{Name: "orders", Database: "shop", Collection: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()
	ready := httptest.NewServer(&otelstream.HealthCheck{Stream: s, MaxLag: time.Minute})
	defer ready.Close()

	orders.InsertOne(ctx, bson.D{{Key: "item", Value: "tea"}})
	orders.InsertOne(ctx, bson.D{{Key: "item", Value: "cake"}})
	for range 2 {
		if _, err := s.Next(ctx); err != nil {
			log.Fatal(err)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "changestream.events.delivered" {
			fmt.Println(m.Name, sum.DataPoints[0].Value, m.Unit)
		}
	}
	resp, err := http.Get(ready.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("ready:", resp.Status)
	// Output:
	// changestream.events.delivered 2 {event}
	// ready: 200 OK
}
