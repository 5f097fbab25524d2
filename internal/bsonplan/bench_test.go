package bsonplan

import (
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkOrder compares the plan with bson.Unmarshal on the Order
// documents of the stream package's benchmarks.
func BenchmarkOrder(b *testing.B) {
	reg := bson.NewRegistry()
	p := Compile(reg, reflect.TypeFor[order]())
	for _, sh := range []struct {
		name        string
		lines, note int
	}{{"300B", 3, 40}, {"4KB", 30, 2200}} {
		doc := makeOrder(sh.lines, sh.note)
		b.Run("doc="+sh.name+"/form=unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var o order
				if err := bson.Unmarshal(doc, &o); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("doc="+sh.name+"/form=plan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var o order
				if !p.Decode(doc, &o) {
					b.Fatal("declined")
				}
			}
		})
	}
}
