package main

import (
	"strings"
	"testing"
)

const sampleOutput = `goos: linux
cpu: Example CPU
BenchmarkThroughput/doc=300B/batch=default/form=driver-2   100  20000 ns/op  50000 events/s  1000 B/op  120 allocs/op
BenchmarkThroughput/doc=300B/batch=default/form=Next-2     100  10000 ns/op  90000 events/s   500 B/op   50 allocs/op
BenchmarkThroughput/doc=300B/batch=default/form=driver-2   100  20000 ns/op  70000 events/s  1000 B/op  124 allocs/op
BenchmarkThroughput/doc=300B/batch=default/form=Next-2     100  10000 ns/op  60000 events/s   500 B/op   52 allocs/op
BenchmarkThroughput/doc=300B/batch=default/form=driver-2   100  20000 ns/op  60000 events/s  1000 B/op  122 allocs/op
PASS
`

func TestParseTakesMediansPerForm(t *testing.T) {
	ss, header, err := parse(strings.NewReader(sampleOutput))
	if err != nil {
		t.Fatal(err)
	}
	if len(header) != 2 || len(ss) != 2 {
		t.Fatalf("header %v, %d series; want 2 and 2", header, len(ss))
	}
	tests := []struct {
		form, unit string
		want       float64
	}{
		{"driver", "events/s", 60000},
		{"driver", "allocs/op", 122},
		{"Next", "events/s", 75000}, // two runs: the mean of both
		{"Next", "allocs/op", 51},
	}
	for _, tt := range tests {
		t.Run(tt.form+" "+tt.unit, func(t *testing.T) {
			s := find(ss, tt.form)
			if s == nil || s.group != "BenchmarkThroughput/doc=300B/batch=default" {
				t.Fatalf("series %q not found or wrong group: %+v", tt.form, s)
			}
			if got, _ := s.median(tt.unit); got != tt.want {
				t.Errorf("median %s = %v, want %v", tt.unit, got, tt.want)
			}
		})
	}
	v, _ := throughput(ss[0].group, ss)
	if len(v) != 4 || !strings.HasPrefix(v[0], "NOT met") || !strings.HasPrefix(v[1], "met") ||
		!strings.HasPrefix(v[2], "NOT met") || !strings.Contains(v[2], "2.5×") || !strings.HasPrefix(v[3], "met") {
		t.Errorf("verdicts %q: want events/s not met (1.25×, for 1.5× and 2.5×) and allocs met (0.42×), nothing on CPU time (not measured)", v)
	}
}

func TestDecodeTargetsOfThePlan(t *testing.T) {
	const out = `BenchmarkDecode/doc=4KB/form=floor-2  100  20000 ns/op  237 allocs/op
BenchmarkDecode/doc=4KB/form=plan-2   100   7000 ns/op   36 allocs/op
BenchmarkDecode/doc=300B/form=floor-2 100   3000 ns/op   45 allocs/op
BenchmarkDecode/doc=300B/form=plan-2  100   1600 ns/op    9 allocs/op
`
	ss, _, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	v := decode(ss[0].group, ss[:2])
	if len(v) != 2 || !strings.HasPrefix(v[0], "met") || !strings.Contains(v[0], "0.35×") || !strings.HasPrefix(v[1], "met") {
		t.Errorf("4 KB verdicts %q: want time met (0.35× ≤ 0.4×) and allocs met", v)
	}
	v = decode(ss[2].group, ss[2:])
	if len(v) != 1 || !strings.HasPrefix(v[0], "NOT met") || !strings.Contains(v[0], "0.53×") {
		t.Errorf("300 B verdicts %q: want time not met (0.53× > 0.5×), no allocation target", v)
	}
}

func TestProcessVerdicts(t *testing.T) {
	const out = `BenchmarkProcess/handler=sleep1ms/form=workers-1-2   1000  1100000 ns/op  909 events/s
BenchmarkProcess/handler=sleep1ms/form=workers-64-2  1000  30000 ns/op  33000 events/s
BenchmarkProcess/handler=noop-2  1000  24000 ns/op  10000 form=Next:ns/op  100000 form=Next:events/s  50000 form=Next:events/cpu-s  12.00 form=Next:allocs/op  14000 form=Process:ns/op  71000 form=Process:events/s  40000 form=Process:events/cpu-s  20.00 form=Process:allocs/op  32 allocs/op
`
	ss, _, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	slow := process("BenchmarkProcess/handler=sleep1ms", ss[:2])
	if len(slow) != 1 || !strings.HasPrefix(slow[0], "met") || !strings.Contains(slow[0], "36.30×") {
		t.Errorf("slow handler verdicts %q: want 36.30× met", slow)
	}
	if len(ss) != 4 || ss[2].group != "BenchmarkProcess/handler=noop" || ss[2].form != "Next" || ss[3].form != "Process" {
		t.Fatalf("interleaved line parsed as %d series, want Next and Process rows of group BenchmarkProcess/handler=noop", len(ss))
	}
	if al, _ := ss[3].median("allocs/op"); al != 20 {
		t.Errorf("Process allocs/op %v, want 20 (its own metric, not the line's total)", al)
	}
	nop := process("BenchmarkProcess/handler=noop", ss[2:])
	if len(nop) != 2 || !strings.HasPrefix(nop[0], "NOT met") || !strings.Contains(nop[0], "1.40×") ||
		!strings.HasPrefix(nop[1], "met") || !strings.Contains(nop[1], "1.25×") {
		t.Errorf("no-op verdicts %q: want wall 1.40× not met, CPU 1.25× met", nop)
	}
}

func TestGroupVerdicts(t *testing.T) {
	for _, tc := range []struct {
		four string
		want string
	}{
		{"2971", "met:     Group, 1 ms handler: 4 members ≥ 3× the events/s of 1: 3.44×"},
		{"2500", "NOT met: Group, 1 ms handler: 4 members ≥ 3× the events/s of 1: 2.90×"},
	} {
		out := "BenchmarkGroup/handler=sleep1ms/form=members-1-2  2000  1158686 ns/op  863.0 events/s  23704 B/op  396 allocs/op\n" +
			"BenchmarkGroup/handler=sleep1ms/form=members-4-2  2000  336494 ns/op  " + tc.four + " events/s  23309 B/op  391 allocs/op\n"
		ss, _, err := parse(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 2 || ss[0].group != "BenchmarkGroup/handler=sleep1ms" || ss[1].form != "members-4" {
			t.Fatalf("parsed %d series, want members-1 and members-4 of BenchmarkGroup/handler=sleep1ms", len(ss))
		}
		if v := group(ss[0].group, ss); len(v) != 1 || v[0] != tc.want {
			t.Errorf("verdicts %q, want %q", v, tc.want)
		}
	}
}
