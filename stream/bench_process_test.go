package stream_test

// Benchmarks of Process (docs/performance.md, "Process"). One op is one
// event. Run them alone with:
//
//	go test -run '^$' -bench 'Process' -benchmem -benchtime 10000x -count 1 ./stream/ | go run ./internal/benchtable
//
// The pool is 10 000 events over 1 000 keys (1 000 inserts, then nine
// updates of every document), as the server sends them; each stream reads
// it from its first event.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-changestream/changestream/stream"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// processPool is the size and key count of the Process benchmarks' pool.
const processPool, processKeys = 10000, 1000

// newProcessBenchEnv prefills a server with the pool of the Process
// benchmarks.
func newProcessBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	sh := benchShape{name: "300B", lines: 3, note: 40, pool: processPool}
	env := newBenchEnv(b, benchShape{name: "process", pool: 0})
	env.shape = sh
	ctx := context.Background()
	docs := make([]any, processKeys)
	for i := range docs {
		docs[i] = sh.order(i)
	}
	if _, err := env.coll.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	for range processPool/processKeys - 1 {
		if _, err := env.coll.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$inc", Value: bson.D{{Key: "total", Value: 1}}}}); err != nil {
			b.Fatal(err)
		}
	}
	return env
}

// readProcess reads n events with Process and handler.
func readProcess(workers int, handler func(context.Context, stream.Event[benchOrder]) error) reader {
	return func(ctx context.Context, env *benchEnv, batch int32, n int) error {
		s, err := stream.Watch[stream.Event[benchOrder]](ctx, env.coll, nil, nil, env.csOpts(batch))
		if err != nil {
			return err
		}
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		var count atomic.Int64
		err = stream.Process(pctx, s, func(ctx context.Context, ev stream.Event[benchOrder]) error {
			if err := handler(ctx, ev); err != nil {
				return err
			}
			if count.Add(1) == int64(n) {
				stop()
			}
			return nil
		}, &stream.ProcessOptions[stream.Event[benchOrder]]{Workers: workers})
		if !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Process returned %v", err)
		}
		if c := count.Load(); c < int64(n) {
			return fmt.Errorf("Process handled %d events of %d", c, n)
		}
		return nil
	}
}

// BenchmarkProcess compares Process with one worker and with 64 on a
// handler that sleeps 1 ms (an I/O call), and Process with Next on a
// handler that does nothing (what Process itself costs). The no-op pair is
// one benchmark that alternates the two forms (see runInterleaved), so a
// change of machine load between runs does not move their ratio.
func BenchmarkProcess(b *testing.B) {
	env := newProcessBenchEnv(b)
	sleep := func(context.Context, stream.Event[benchOrder]) error {
		time.Sleep(time.Millisecond)
		return nil
	}
	nop := func(context.Context, stream.Event[benchOrder]) error { return nil }
	for _, bc := range []struct {
		name string
		read reader
	}{
		{"handler=sleep1ms/form=workers-1", readProcess(1, sleep)},
		{"handler=sleep1ms/form=workers-64", readProcess(64, sleep)},
	} {
		b.Run(bc.name, func(b *testing.B) { runReader(b, env, 0, bc.read) })
	}
	var rounds int // across the -count runs, so each run starts where the last left off
	b.Run("handler=noop", func(b *testing.B) {
		runInterleaved(b, env, 0, &rounds, []interleavedForm{
			{"Next", readNext[stream.Event[benchOrder]](nil)},
			{"Process", readProcess(0, nop)},
		})
	})
}

// interleavedForm is one form of runInterleaved.
type interleavedForm struct {
	name string
	read reader
}

// runInterleaved reads b.N events with each form, in turns of one pool
// (a new stream from the pool's first event, as runReader reads), the
// order of the forms reversed every round (A B, B A, A B, ...; *rounds
// counts the rounds across calls, so with -benchtime 10000x the -count
// runs alternate which form goes first), and reports each form's cost
// per event as metrics named form=NAME:UNIT (ns/op, events/s, events/cpu-s, allocs/op), which
// internal/benchtable reads as one row per form. Both forms see the same
// machine load, so their ratio holds within one run. Allocations, like
// -benchmem's, count the whole process (mongotest included).
func runInterleaved(b *testing.B, env *benchEnv, batch int32, rounds *int, forms []interleavedForm) {
	ctx := context.Background()
	b.ReportAllocs()
	wall := make([]time.Duration, len(forms))
	cpu := make([]time.Duration, len(forms))
	mallocs := make([]uint64, len(forms))
	var ms runtime.MemStats
	b.ResetTimer()
	for left := b.N; left > 0; *rounds++ {
		n := min(left, env.shape.pool)
		for k := range forms {
			i := k
			if *rounds%2 == 1 {
				i = len(forms) - 1 - k
			}
			// As testing does before each benchmark: no form's turn pays
			// for the garbage of the turn before it (the driver's, 117
			// allocations an event, fell on the form after it).
			runtime.GC()
			runtime.ReadMemStats(&ms)
			m0, c0, t0 := ms.Mallocs, processCPU(), time.Now()
			if err := forms[i].read(ctx, env, batch, n); err != nil {
				b.Fatal(err)
			}
			wall[i] += time.Since(t0)
			cpu[i] += processCPU() - c0
			runtime.ReadMemStats(&ms)
			mallocs[i] += ms.Mallocs - m0
		}
		left -= n
	}
	b.StopTimer()
	for i, f := range forms {
		b.ReportMetric(float64(wall[i].Nanoseconds())/float64(b.N), "form="+f.name+":ns/op")
		b.ReportMetric(float64(b.N)/wall[i].Seconds(), "form="+f.name+":events/s")
		if cpu[i] > 0 {
			b.ReportMetric(float64(b.N)/cpu[i].Seconds(), "form="+f.name+":events/cpu-s")
		}
		b.ReportMetric(float64(mallocs[i])/float64(b.N), "form="+f.name+":allocs/op")
	}
}
