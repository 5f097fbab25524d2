package main

import (
	"fmt"
	"math"
	"strings"
)

// chartGroup is one throughput table as the chart shows it: each form's
// events/s, events per CPU-second and allocations per event as multiples
// of the driver's.
type chartGroup struct {
	name string // "doc=300B/batch=default"
	rows []chartRow
}

type chartRow struct {
	form                string
	events, cpu, allocs float64 // × driver; NaN when not measured
}

// values returns the row's ratios in the order of the panels.
func (r chartRow) values() [chartPanels]float64 {
	return [chartPanels]float64{r.events, r.cpu, r.allocs}
}

// chartPanels is the number of panels: events/s, events/cpu-s, allocations.
const chartPanels = 3

// Layout of the chart, in SVG user units (pixels at 100%).
const (
	chartRowH     = 18  // one bar
	chartGroupGap = 26  // the heading above each group
	chartLabelW   = 130 // the form names
	chartPanelW   = 250 // the bars of one panel
	chartValueW   = 50  // the value after a bar
	chartTop      = 58  // title and panel headings
	chartPad      = 16
)

// xmlEscaper escapes text for SVG.
var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

// renderSVG draws the throughput groups as three panels of horizontal
// bars: events/s, events per CPU-second and allocations per event against
// the driver, each with a line at 1× (the driver). caption is printed under
// the title.
func renderSVG(groups []chartGroup, caption string) []byte {
	var panelX [chartPanels]float64
	for i := range panelX {
		panelX[i] = chartPad + chartLabelW + float64(i)*(chartPanelW+chartValueW+20)
	}
	width := panelX[chartPanels-1] + chartPanelW + chartValueW + chartPad
	height := float64(chartTop + chartPad)
	for _, g := range groups {
		height += chartGroupGap + float64(len(g.rows))*chartRowH
	}
	// Each panel's scale: its largest ratio, rounded up to a whole number,
	// leaving out the Raw form (no decoding at all), whose bars would
	// squeeze the others; a bar beyond the scale is cut at its end.
	var maxv [chartPanels]float64
	for _, g := range groups {
		for _, r := range g.rows {
			if r.form == "Raw" {
				continue
			}
			for i, v := range r.values() {
				if !math.IsNaN(v) {
					maxv[i] = math.Max(maxv[i], v)
				}
			}
		}
	}
	for i := range maxv {
		maxv[i] = math.Max(1, math.Ceil(maxv[i]))
	}
	colours := map[string]string{"driver": "#9e9e9e", "All": "#1f77b4", "Next": "#2a8fd6", "Next-noprefetch": "#7fb8e6", "Raw": "#2ca02c"}

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">Stream[Event[Order]] against the driver's ChangeStream (1× = the driver)</text>`+"\n", chartPad)
	p(`<text x="%d" y="38" fill="#555555">%s</text>`+"\n", chartPad, xmlEscaper.Replace(caption))
	titles := [chartPanels]string{"events/s × driver (higher is better)", "events per CPU-second × driver (higher is better)",
		"allocations per event × driver (lower is better)"}
	for i, x := range panelX {
		p(`<text x="%.0f" y="%d" font-weight="bold">%s</text>`+"\n", x, chartTop-6, titles[i])
	}
	y := float64(chartTop)
	for _, g := range groups {
		y += chartGroupGap
		p(`<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", chartPad, y-8, xmlEscaper.Replace(groupTitle(g.name)))
		top := y
		for _, r := range g.rows {
			p(`<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n", panelX[0]-6, y+13, xmlEscaper.Replace(r.form))
			for i, v := range r.values() {
				if math.IsNaN(v) {
					continue
				}
				w := v / maxv[i] * chartPanelW
				cut := w > chartPanelW
				w = min(w, chartPanelW)
				colour := colours[r.form]
				if colour == "" {
					colour = "#ff7f0e"
				}
				p(`<rect class="bar" data-form="%s" data-panel="%d" x="%.0f" y="%.0f" width="%.1f" height="%d" fill="%s"/>`+"\n",
					xmlEscaper.Replace(r.form), i, panelX[i], y+2, w, chartRowH-4, colour)
				if cut {
					// Two white slashes near the end: the bar goes on.
					for _, dx := range []float64{14, 9} {
						x := panelX[i] + w - dx
						p(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ffffff" stroke-width="2"/>`+"\n", x, y+chartRowH, x+4, y)
					}
				}
				p(`<text x="%.1f" y="%.0f">%.2f×</text>`+"\n", panelX[i]+w+4, y+13, v)
			}
			y += chartRowH
		}
		// The driver's 1× in each panel.
		for i, x := range panelX {
			lx := x + chartPanelW/maxv[i]
			p(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333333" stroke-dasharray="3,3"/>`+"\n", lx, top, lx, y)
		}
	}
	// Axes: each panel's left edge and scale.
	for i, x := range panelX {
		p(`<line x1="%.0f" y1="%d" x2="%.0f" y2="%.0f" stroke="#333333"/>`+"\n", x, chartTop, x, y)
		p(`<text x="%.0f" y="%.0f" fill="#555555" text-anchor="end">%.0f×</text>`+"\n", x+chartPanelW, y+14, maxv[i])
	}
	p("</svg>\n")
	return []byte(b.String())
}

// groupTitle turns "doc=300B/batch=default" into "300 B documents, default batches".
func groupTitle(name string) string {
	var doc, batch string
	for part := range strings.SplitSeq(name, "/") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "doc":
			doc = v
			if n, ok := strings.CutSuffix(v, "KB"); ok {
				doc = n + " KB"
			} else if n, ok := strings.CutSuffix(v, "B"); ok {
				doc = n + " B"
			}
		case "batch":
			batch = v
		}
	}
	switch {
	case doc == "":
		return name
	case batch == "default":
		return doc + " documents, default batch size"
	case batch != "":
		return doc + " documents, batch size " + batch
	}
	return doc + " documents"
}
