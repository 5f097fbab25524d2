package stream_test

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// An event sent on as JSON and read back keeps every field: those Event
// names, a null fullDocument, and a field it does not name.
func ExampleEvent_MarshalJSON() {
	raw, err := bson.Marshal(bson.D{
		{Key: "_id", Value: bson.D{{Key: "_data", Value: "82642AD66D000000012B"}}},
		{Key: "operationType", Value: "update"},
		{Key: "clusterTime", Value: bson.Timestamp{T: 1680529004, I: 1}},
		{Key: "txnNumber", Value: int64(3)},
		{Key: "ns", Value: bson.D{{Key: "db", Value: "shop"}, {Key: "coll", Value: "orders"}}},
		{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "updateDescription", Value: bson.D{
			{Key: "updatedFields", Value: bson.D{{Key: "qty", Value: 3}}},
			{Key: "removedFields", Value: bson.A{}},
			{Key: "truncatedArrays", Value: bson.A{}},
		}},
		{Key: "fullDocument", Value: nil}, // the order was deleted before the lookup
		{Key: "futureField", Value: "kept in Extra"},
	})
	if err != nil {
		log.Fatal(err)
	}
	var ev stream.Event[Order]
	if err := bson.Unmarshal(raw, &ev); err != nil {
		log.Fatal(err)
	}

	js, err := json.Marshal(ev) // canonical Extended JSON
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(js))

	var back stream.Event[Order]
	if err := json.Unmarshal(js, &back); err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.OperationType, back.NS, *back.TxnNumber, back.FullDocument == nil, back.Extra)
	// Output:
	// {"_id":{"_data":"82642AD66D000000012B"},"operationType":"update","clusterTime":{"$timestamp":{"t":1680529004,"i":1}},"txnNumber":{"$numberLong":"3"},"ns":{"db":"shop","coll":"orders"},"documentKey":{"_id":{"$numberInt":"1"}},"updateDescription":{"updatedFields":{"qty":{"$numberInt":"3"}},"removedFields":[],"truncatedArrays":[]},"futureField":"kept in Extra","fullDocument":null}
	// update shop.orders 3 true {"futureField": "kept in Extra","fullDocument": null}
}
