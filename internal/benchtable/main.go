// Command benchtable prints the ratio table of docs/performance.md from the
// output of the stream package's benchmarks. Run it from the module root:
//
//	go test -run '^$' -bench . -benchmem -benchtime 10000x -count 5 ./stream/ | go run ./internal/benchtable
//
// For each benchmark and form it takes the median over the -count runs of
// events/s, ns/op and allocs/op (one op is one event), and compares each
// form with the raw driver (throughput) or with the floor, bson.Unmarshal
// of the document alone (in-memory decode). It also says which of the
// targets of issues 5 and 16 the run meets. Timings are only compared
// within one run.
//
// It also draws the throughput tables as a bar chart, events/s, events per
// CPU-second and allocations per event against the driver for each
// document and batch size, into the SVG file -svg names: docs/performance.svg by default,
// which docs/performance.md shows (-svg "" draws nothing).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one result line of a benchmark.
type sample struct {
	metrics map[string]float64 // unit -> value
}

// series is every run of one benchmark.
type series struct {
	group, form string
	runs        []sample
}

func (s *series) median(unit string) (float64, bool) {
	var v []float64
	for _, r := range s.runs {
		if x, ok := r.metrics[unit]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads benchmark output and returns the series in order of first
// appearance, plus the header lines (goos, cpu, ...).
func parse(r io.Reader) ([]*series, []string, error) {
	var out []*series
	byName := map[string]*series{}
	var header []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, _, ok := strings.Cut(line, ": "); ok && (k == "goos" || k == "goarch" || k == "cpu" || k == "pkg") {
			if !slices.Contains(header, line) {
				header = append(header, line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		s := sample{metrics: map[string]float64{}}
		perForm := map[string]sample{} // form -> metrics, from units form=NAME:UNIT
		var forms []string
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("line %q: %v", line, err)
			}
			unit := f[i+1]
			if rest, ok := strings.CutPrefix(unit, "form="); ok {
				if form, u, ok := strings.Cut(rest, ":"); ok {
					if _, seen := perForm[form]; !seen {
						perForm[form] = sample{metrics: map[string]float64{}}
						forms = append(forms, form)
					}
					perForm[form].metrics[u] = v
					continue
				}
			}
			s.metrics[unit] = v
		}
		add := func(name, group, form string, s sample) {
			ser := byName[name]
			if ser == nil {
				ser = &series{group: group, form: form}
				byName[name] = ser
				out = append(out, ser)
			}
			ser.runs = append(ser.runs, s)
		}
		if len(forms) > 0 {
			// An interleaved benchmark: one row per form, named as if
			// each form were its own sub-benchmark; the line's own
			// totals (both forms together) are left out.
			for _, form := range forms {
				add(name+"/form="+form, name, form, perForm[form])
			}
			continue
		}
		group, form := name, ""
		if i := strings.LastIndex(name, "/form="); i >= 0 {
			group, form = name[:i], name[i+len("/form="):]
		}
		add(name, group, form, s)
	}
	return out, header, sc.Err()
}

func main() {
	svgPath := flag.String("svg", "docs/performance.svg", "write the throughput chart to this SVG file (\"\": none)")
	flag.Parse()
	all, header, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(all) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results on stdin; pipe the output of go test -bench into it")
		os.Exit(1)
	}
	for _, h := range header {
		fmt.Println(h)
	}
	fmt.Println()
	var verdicts []string
	groups := map[string][]*series{}
	var order []string
	for _, s := range all {
		if _, ok := groups[s.group]; !ok {
			order = append(order, s.group)
		}
		groups[s.group] = append(groups[s.group], s)
	}
	var chart []chartGroup
	for _, g := range order {
		switch {
		case strings.HasPrefix(g, "BenchmarkThroughput/"):
			v, cg := throughput(g, groups[g])
			verdicts = append(verdicts, v...)
			chart = append(chart, cg)
		case strings.HasPrefix(g, "BenchmarkDecode/"):
			verdicts = append(verdicts, decode(g, groups[g])...)
		case strings.HasPrefix(g, "BenchmarkSnapshot/"):
			verdicts = append(verdicts, snapshot(g, groups[g])...)
		case strings.HasPrefix(g, "BenchmarkProcess/"):
			verdicts = append(verdicts, process(g, groups[g])...)
		case strings.HasPrefix(g, "BenchmarkGroup/"):
			verdicts = append(verdicts, group(g, groups[g])...)
		default:
			other(g, groups[g])
		}
	}
	if len(verdicts) > 0 {
		fmt.Println("Targets:")
		for _, v := range verdicts {
			fmt.Println("  " + v)
		}
	}
	if *svgPath != "" && len(chart) > 0 {
		caption := fmt.Sprintf("Medians of %d runs, %s, %s/%s, %s. Compare only within one run.",
			runs(all), time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, cpuOf(header))
		if err := os.WriteFile(*svgPath, renderSVG(chart, caption), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "benchtable: wrote", *svgPath)
	}
}

// cpuOf returns the cpu header line's model, or "CPU unknown".
func cpuOf(header []string) string {
	for _, h := range header {
		if m, ok := strings.CutPrefix(h, "cpu: "); ok {
			return m
		}
	}
	return "CPU unknown"
}

func find(ss []*series, form string) *series {
	for _, s := range ss {
		if s.form == form {
			return s
		}
	}
	return nil
}

func runs(ss []*series) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s.runs))
	}
	return n
}

// snapshot prints one table of a BenchmarkSnapshot group: each form
// against the driver's Find loop with the snapshot's sort and batch size
// (driver-sorted), with the target of issue 11.
func snapshot(g string, ss []*series) []string {
	base := find(ss, "driver-sorted")
	fmt.Printf("%s (median of %d runs)\n\n", g, runs(ss))
	fmt.Println("| form | docs/s | × driver-sorted | docs/cpu-s | × driver-sorted | allocs/doc | × driver-sorted |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var bev, bcpu, bal float64
	if base != nil {
		bev, _ = base.median("events/s")
		bcpu, _ = base.median("events/cpu-s")
		bal, _ = base.median("allocs/op")
	}
	var verdicts []string
	for _, s := range ss {
		ev, _ := s.median("events/s")
		cpu, _ := s.median("events/cpu-s")
		al, _ := s.median("allocs/op")
		fmt.Printf("| %s | %.0f | %s | %.0f | %s | %.0f | %s |\n", s.form, ev, ratio(ev, bev), cpu, ratio(cpu, bcpu), al, ratio(al, bal))
		if s.form == "Snapshot" && base != nil {
			verdicts = append(verdicts,
				verdict(ev >= bev, fmt.Sprintf("%s: snapshot docs/s ≥ 1.0× driver Find loop: %s", g, ratio(ev, bev))))
			if bcpu > 0 {
				verdicts = append(verdicts,
					verdict(cpu >= bcpu, fmt.Sprintf("%s: snapshot docs/cpu-s ≥ 1.0× driver Find loop: %s", g, ratio(cpu, bcpu))))
			}
		}
	}
	fmt.Println()
	return verdicts
}

// throughput prints one table of a BenchmarkThroughput group: each form
// against the raw driver. It returns the verdicts and the group's bars.
// throughputForms is the order of BenchmarkThroughput's rows: an
// interleaved benchmark reports its forms in the order of their metric
// names, which is not the order to read them in.
var throughputForms = []string{"driver", "All", "Next", "Next-noprefetch", "All-decodeahead", "Next-decodeahead", "Raw", "Batches-1000"}

func throughput(g string, ss []*series) ([]string, chartGroup) {
	rank := func(form string) int {
		if i := slices.Index(throughputForms, form); i >= 0 {
			return i
		}
		return len(throughputForms)
	}
	ss = slices.Clone(ss)
	slices.SortStableFunc(ss, func(a, b *series) int { return rank(a.form) - rank(b.form) })
	cg := chartGroup{name: strings.TrimPrefix(g, "BenchmarkThroughput/")}
	base := find(ss, "driver")
	fmt.Printf("%s (median of %d runs)\n\n", strings.TrimPrefix(g, "BenchmarkThroughput/"), runs(ss))
	fmt.Println("| form | events/s | × driver | events/cpu-s | × driver | allocs/event | × driver |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var bev, bcpu, bal float64
	if base != nil {
		bev, _ = base.median("events/s")
		bcpu, _ = base.median("events/cpu-s")
		bal, _ = base.median("allocs/op")
	}
	var verdicts []string
	for _, s := range ss {
		ev, _ := s.median("events/s")
		cpu, _ := s.median("events/cpu-s")
		al, _ := s.median("allocs/op")
		fmt.Printf("| %s | %.0f | %s | %.0f | %s | %.0f | %s |\n", s.form, ev, ratio(ev, bev), cpu, ratio(cpu, bcpu), al, ratio(al, bal))
		cg.rows = append(cg.rows, chartRow{form: s.form, events: fraction(ev, bev), cpu: fraction(cpu, bcpu), allocs: fraction(al, bal)})
		if s.form == "Next" && base != nil {
			verdicts = append(verdicts,
				verdict(ev >= 1.5*bev, fmt.Sprintf("%s: Stream[Event[Order]].Next events/s ≥ 1.5× driver: %s", trim(g), ratio(ev, bev))))
			if bcpu > 0 {
				verdicts = append(verdicts,
					verdict(cpu >= 1.5*bcpu, fmt.Sprintf("%s: Stream[Event[Order]].Next events/cpu-s ≥ 1.5× driver: %s", trim(g), ratio(cpu, bcpu))))
			}
			verdicts = append(verdicts,
				verdict(al <= 0.5*bal, fmt.Sprintf("%s: Stream[Event[Order]].Next allocs/event ≤ 0.5× driver: %s", trim(g), ratio(al, bal))))
		}
		if (s.form == "Next" || s.form == "All") && base != nil {
			want := 2.0 // issue 16: 4 KB
			if strings.Contains(g, "doc=300B") {
				want = 2.5
			}
			verdicts = append(verdicts,
				verdict(ev >= want*bev, fmt.Sprintf("%s: issue 16: Stream[Event[Order]].%s events/s ≥ %.1f× driver: %s", trim(g), s.form, want, ratio(ev, bev))),
				verdict(al <= 0.5*bal, fmt.Sprintf("%s: issue 16: Stream[Event[Order]].%s allocs/event ≤ 0.5× driver: %s", trim(g), s.form, ratio(al, bal))))
		}
	}
	fmt.Println()
	return verdicts, cg
}

// fraction is v/base, or NaN without a base.
func fraction(v, base float64) float64 {
	if base == 0 {
		return math.NaN()
	}
	return v / base
}

// decode prints one table of a BenchmarkDecode group: each form against the
// floor.
func decode(g string, ss []*series) []string {
	base := find(ss, "floor")
	fmt.Printf("in-memory decode, %s (median of %d runs)\n\n", strings.TrimPrefix(g, "BenchmarkDecode/"), runs(ss))
	fmt.Println("| form | ns/event | × floor | CPU ns/event | × floor | allocs/event | × floor |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var bns, bcpu, bal float64
	if base != nil {
		bns, _ = base.median("ns/op")
		bcpu = cpuNS(base)
		bal, _ = base.median("allocs/op")
	}
	var verdicts []string
	for _, s := range ss {
		ns, _ := s.median("ns/op")
		cpu := cpuNS(s)
		al, _ := s.median("allocs/op")
		fmt.Printf("| %s | %.0f | %s | %.0f | %s | %.0f | %s |\n", s.form, ns, ratio(ns, bns), cpu, ratio(cpu, bcpu), al, ratio(al, bal))
		if s.form == "plan" && base != nil {
			want := 0.4 // issue 16: 4 KB
			if strings.Contains(g, "doc=300B") {
				want = 0.5
			}
			verdicts = append(verdicts, verdict(ns <= want*bns, fmt.Sprintf("%s: issue 16: compiled decode of Order ≤ %.1f× bson.Unmarshal (wall time): %s", trim(g), want, ratio(ns, bns))))
			if !strings.Contains(g, "doc=300B") {
				verdicts = append(verdicts, verdict(al <= 0.6*bal, fmt.Sprintf("%s: issue 16: compiled decode of Order allocs ≤ 0.6× bson.Unmarshal: %s", trim(g), ratio(al, bal))))
			}
		}
		if s.form == "event" && base != nil {
			verdicts = append(verdicts, verdict(ns <= 1.3*bns, fmt.Sprintf("%s: in-memory decode of Event[Order] ≤ 1.3× the floor (wall time): %s", trim(g), ratio(ns, bns))))
			if bcpu > 0 {
				verdicts = append(verdicts, verdict(cpu <= 1.3*bcpu, fmt.Sprintf("%s: in-memory decode of Event[Order] ≤ 1.3× the floor (CPU time): %s", trim(g), ratio(cpu, bcpu))))
			}
		}
	}
	fmt.Println()
	return verdicts
}

// process prints one table of a BenchmarkProcess group: a slow handler
// with one worker against 64 (events/s, target ≥ 30×), or a no-op handler
// under Process against Next (cost per event, target ≤ 1.3×).
func process(g string, ss []*series) []string {
	baseForm, form := "workers-1", "workers-64"
	if strings.HasSuffix(g, "handler=noop") {
		baseForm, form = "Next", "Process"
	}
	base := find(ss, baseForm)
	fmt.Printf("Process, %s (median of %d runs)\n\n", strings.TrimPrefix(g, "BenchmarkProcess/"), runs(ss))
	fmt.Printf("| form | events/s | × %s | ns/event | × %s | CPU ns/event | × %s | allocs/event |\n", baseForm, baseForm, baseForm)
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	var bev, bns, bcpu float64
	if base != nil {
		bev, _ = base.median("events/s")
		bns, _ = base.median("ns/op")
		bcpu = cpuNS(base)
	}
	var verdicts []string
	for _, s := range ss {
		ev, _ := s.median("events/s")
		ns, _ := s.median("ns/op")
		cpu := cpuNS(s)
		al, _ := s.median("allocs/op")
		fmt.Printf("| %s | %.0f | %s | %.0f | %s | %.0f | %s | %.0f |\n", s.form, ev, ratio(ev, bev), ns, ratio(ns, bns), cpu, ratio(cpu, bcpu), al)
		if s.form != form || base == nil {
			continue
		}
		if baseForm == "Next" {
			verdicts = append(verdicts, verdict(ns <= 1.3*bns, fmt.Sprintf("Process with a no-op handler costs ≤ 1.3× Next (wall time per event): %s", ratio(ns, bns))))
			if bcpu > 0 {
				verdicts = append(verdicts, verdict(cpu <= 1.3*bcpu, fmt.Sprintf("Process with a no-op handler costs ≤ 1.3× Next (CPU time per event): %s", ratio(cpu, bcpu))))
			}
		} else {
			verdicts = append(verdicts, verdict(ev >= 30*bev, fmt.Sprintf("Process, 1 ms handler: 64 workers ≥ 30× the events/s of 1: %s", ratio(ev, bev))))
		}
	}
	fmt.Println()
	return verdicts
}

// group prints the table of a BenchmarkGroup group: a group of 1 member
// against 4, each member handling one event at a time with a 1 ms handler
// (events/s, target ≥ 3×).
func group(g string, ss []*series) []string {
	base := find(ss, "members-1")
	fmt.Printf("Group, %s (median of %d runs)\n\n", strings.TrimPrefix(g, "BenchmarkGroup/"), runs(ss))
	fmt.Println("| form | events/s | × members-1 | allocs/event |")
	fmt.Println("|---|---:|---:|---:|")
	var bev float64
	if base != nil {
		bev, _ = base.median("events/s")
	}
	var verdicts []string
	for _, s := range ss {
		ev, _ := s.median("events/s")
		al, _ := s.median("allocs/op")
		fmt.Printf("| %s | %.0f | %s | %.0f |\n", s.form, ev, ratio(ev, bev), al)
		if s.form == "members-4" && base != nil {
			verdicts = append(verdicts, verdict(ev >= 3*bev, fmt.Sprintf("Group, 1 ms handler: 4 members ≥ 3× the events/s of 1: %s", ratio(ev, bev))))
		}
	}
	fmt.Println()
	return verdicts
}

// cpuNS is the median CPU time per event, from events/cpu-s; 0 when not
// measured.
func cpuNS(s *series) float64 {
	var v []float64
	for _, r := range s.runs {
		if x := r.metrics["events/cpu-s"]; x > 0 {
			v = append(v, 1e9/x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// other prints the medians of every metric of a group, such as the latency
// benchmark.
func other(g string, ss []*series) {
	for _, s := range ss {
		name := g
		if s.form != "" {
			name += "/form=" + s.form
		}
		var units []string
		for _, r := range s.runs {
			for u := range r.metrics {
				if !slices.Contains(units, u) {
					units = append(units, u)
				}
			}
		}
		slices.Sort(units)
		var parts []string
		for _, u := range units {
			m, _ := s.median(u)
			parts = append(parts, fmt.Sprintf("%s %.0f", u, m))
		}
		fmt.Printf("%s (median of %d runs): %s\n\n", name, len(s.runs), strings.Join(parts, ", "))
	}
}

func trim(g string) string {
	for _, p := range []string{"BenchmarkThroughput/", "BenchmarkDecode/"} {
		g = strings.TrimPrefix(g, p)
	}
	return g
}

func ratio(v, base float64) string {
	if base == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func verdict(ok bool, what string) string {
	if ok {
		return "met:     " + what
	}
	return "NOT met: " + what
}
