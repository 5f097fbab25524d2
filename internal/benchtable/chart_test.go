package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestChart: the SVG is well-formed, and each form has a bar in each panel
// as long as its ratio to the driver, on a scale of the largest ratio.
func TestChart(t *testing.T) {
	ss, _, err := parse(strings.NewReader(sampleOutput))
	if err != nil {
		t.Fatal(err)
	}
	_, cg := throughput(ss[0].group, ss)
	// Raw, far beyond the others, is cut at the scale.
	cg.rows = append(cg.rows, chartRow{form: "Raw", events: 9, cpu: math.NaN(), allocs: 0.01})
	svg := renderSVG([]chartGroup{cg}, "a caption with <markup> & more")
	type bar struct{ form, panel string }
	widths := map[bar]float64{}
	var texts []string
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range el.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if el.Name.Local == "rect" && attrs["class"] == "bar" {
				w, err := strconv.ParseFloat(attrs["width"], 64)
				if err != nil {
					t.Fatal(err)
				}
				widths[bar{attrs["data-form"], attrs["data-panel"]}] = w
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	// events/s: driver 60000, Next 75000 (1.25×); the scale is 2×.
	// events/cpu-s: not measured, no bars. allocs: driver 122, Next 51
	// (0.418×); the scale is 1×.
	want := map[bar]float64{
		{"driver", "0"}: chartPanelW / 2,
		{"Next", "0"}:   1.25 / 2 * chartPanelW,
		{"driver", "2"}: chartPanelW,
		{"Next", "2"}:   51.0 / 122 * chartPanelW,
		{"Raw", "0"}:    chartPanelW, // 9× on a 2× scale: cut
		{"Raw", "2"}:    0.01 * chartPanelW,
	}
	if len(widths) != len(want) {
		t.Errorf("%d bars, want %d: %v", len(widths), len(want), widths)
	}
	for b, w := range want {
		if got := widths[b]; got < w-0.1 || got > w+0.1 {
			t.Errorf("bar %v: width %.1f, want %.1f", b, got, w)
		}
	}
	all := strings.Join(texts, "|")
	for _, s := range []string{"1.25×", "0.42×", "9.00×", "300 B documents, default batch size", "a caption with <markup> & more"} {
		if !strings.Contains(all, s) {
			t.Errorf("the chart lacks the text %q", s)
		}
	}
}

func TestGroupTitle(t *testing.T) {
	for in, want := range map[string]string{
		"doc=300B/batch=default": "300 B documents, default batch size",
		"doc=4KB/batch=1000":     "4 KB documents, batch size 1000",
		"doc=4KB":                "4 KB documents",
		"other":                  "other",
	} {
		if got := groupTitle(in); got != want {
			t.Errorf("groupTitle(%q) = %q, want %q", in, got, want)
		}
	}
}
