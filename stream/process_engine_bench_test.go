package stream

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkProcessEngine runs the engine alone, on an in-memory source of
// events over 1 000 keys with a no-op handler: what Process adds to each
// event besides the stream's own work.
func BenchmarkProcessEngine(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	tok := memToken(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	take := func(ctx context.Context) (processEvent[int], error) {
		if n++; n > b.N {
			<-ctx.Done()
			return processEvent[int]{}, ctx.Err()
		}
		return processEvent[int]{val: n, tok: tok, more: true}, nil
	}
	var handled atomic.Int64
	handler := func(context.Context, int) error {
		if handled.Add(1) == int64(b.N) {
			cancel()
		}
		return nil
	}
	o, err := (&ProcessOptions[int]{Key: func(v int) (string, bool) { return keys[v%len(keys)], true }}).resolve()
	if err != nil {
		b.Fatal(err)
	}
	p := newProcessor(take, func(Token) error { return nil }, handler, o, nil)
	b.ReportAllocs()
	b.ResetTimer()
	if err := p.run(ctx); err != context.Canceled {
		b.Fatal(err)
	}
}
