package dashboard

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one point of the overview's charts.
type sample struct {
	At                time.Time
	Processed, Failed float64 // per second
	Lag               float64
}

// history keeps the last samples, oldest first.
type history struct {
	mu      sync.Mutex
	samples []sample
	max     int
}

func newHistory(max int) *history { return &history{max: max} }

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if len(h.samples) > h.max {
		h.samples = append(h.samples[:0], h.samples[len(h.samples)-h.max:]...)
	}
}

func (h *history) points() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sample(nil), h.samples...)
}

const chartW, chartH = 360.0, 90.0

// chart draws one series as an inline SVG line, scaled to its maximum, and
// returns the maximum's label.
func chart(pts []sample, y func(sample) float64, color string) (template.HTML, string) {
	top := 0.0
	for _, p := range pts {
		top = max(top, y(p))
	}
	label := strconv.FormatFloat(top, 'f', 1, 64)
	if top == 0 {
		top = 1
	}
	var line strings.Builder
	if len(pts) > 0 {
		t0, span := pts[0].At, pts[len(pts)-1].At.Sub(pts[0].At).Seconds()
		for i, p := range pts {
			x := chartW
			if span > 0 {
				x = p.At.Sub(t0).Seconds() / span * chartW
			}
			fmt.Fprintf(&line, "%.1f,%.1f ", x, chartH-y(p)/top*(chartH-4)-2)
			if i == 0 && len(pts) == 1 {
				fmt.Fprintf(&line, "0,%.1f ", chartH-y(p)/top*(chartH-4)-2)
			}
		}
	}
	svg := fmt.Sprintf(`<svg class="chart" viewBox="0 0 %.0f %.0f" preserveAspectRatio="none" role="img">`+
		`<line x1="0" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#ccc"/>`+
		`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/></svg>`,
		chartW, chartH, chartH-1, chartW, chartH-1, color, strings.TrimSpace(line.String()))
	return template.HTML(svg), label
}
