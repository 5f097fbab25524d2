package stream_test

import (
	"testing"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkEventBSON measures an event stored and read back: bson.Unmarshal
// and bson.Marshal of Event[benchOrder] (its own UnmarshalBSON and
// MarshalBSON), against the same with benchDriverEvent, the struct a
// raw-driver user would write, through the driver's reflection. One op is
// one event. marshalbson-event calls MarshalBSON directly: bson.Marshal of
// a bson.Marshaler copies the document it returns element by element.
func BenchmarkEventBSON(b *testing.B) {
	for _, sh := range benchShapes {
		env := benchEvents[sh.name] // prefilled by BenchmarkThroughput in this run
		if env == nil {
			env = newBenchEnv(b, sh)
		}
		events := make([]stream.Event[benchOrder], len(env.events))
		drivers := make([]benchDriverEvent, len(env.events))
		for i, raw := range env.events {
			if err := bson.Unmarshal(raw, &events[i]); err != nil {
				b.Fatal(err)
			}
			if err := bson.Unmarshal(raw, &drivers[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("doc="+sh.name+"/form=unmarshal-event", func(b *testing.B) {
			runDecode(b, env.events, func(raw bson.Raw) error {
				var ev stream.Event[benchOrder]
				return bson.Unmarshal(raw, &ev)
			})
		})
		b.Run("doc="+sh.name+"/form=unmarshal-driver", func(b *testing.B) {
			runDecode(b, env.events, func(raw bson.Raw) error {
				var ev benchDriverEvent
				return bson.Unmarshal(raw, &ev)
			})
		})
		b.Run("doc="+sh.name+"/form=marshal-event", func(b *testing.B) {
			i := 0
			runDecode(b, env.events, func(bson.Raw) error {
				_, err := bson.Marshal(events[i%len(events)])
				i++
				return err
			})
		})
		b.Run("doc="+sh.name+"/form=marshalbson-event", func(b *testing.B) {
			i := 0
			runDecode(b, env.events, func(bson.Raw) error {
				_, err := events[i%len(events)].MarshalBSON() // without bson.Marshal's copy
				i++
				return err
			})
		})
		b.Run("doc="+sh.name+"/form=marshal-driver", func(b *testing.B) {
			i := 0
			runDecode(b, env.events, func(bson.Raw) error {
				_, err := bson.Marshal(drivers[i%len(drivers)])
				i++
				return err
			})
		})
	}
}
