package views

import (
	"fmt"
	"strconv"
)

// Chart is a bar chart of a counter's last days: views, with visitors as
// the inner bar.
type Chart struct {
	Days []ChartDay // oldest first
	// Unavailable says the history could not be read: no chart is drawn.
	Unavailable bool
}

// ChartDay is one bar.
type ChartDay struct {
	Date            string // 2026-11-28
	Label           string // Nov 28
	Views, Visitors int64
}

// The chart's geometry, in SVG user units: the SVG scales to its box.
const (
	chartBar    = 16
	chartGap    = 4
	chartHeight = 120 // the tallest bar
	chartTop    = 16  // room for the maximum's label
	chartBottom = 20  // room for the dates
)

func (c Chart) width() int { return len(c.Days) * (chartBar + chartGap) }

func (c Chart) max() int64 {
	var m int64
	for _, d := range c.Days {
		m = max(m, d.Views, d.Visitors)
	}
	return m
}

func (c Chart) viewBox() string {
	return fmt.Sprintf("0 0 %d %d", c.width(), chartTop+chartHeight+chartBottom)
}

// barHeight scales n to the tallest bar; a day with any views shows at
// least one unit, so it is told apart from none.
func (c Chart) barHeight(n int64) int {
	m := c.max()
	if n <= 0 || m == 0 {
		return 0
	}
	return max(1, int(n*chartHeight/m))
}

func (c Chart) barX(i int) string { return strconv.Itoa(i*(chartBar+chartGap) + chartGap/2) }

func (c Chart) barY(n int64) string { return strconv.Itoa(chartTop + chartHeight - c.barHeight(n)) }

func (c Chart) barH(n int64) string { return strconv.Itoa(c.barHeight(n)) }

func (d ChartDay) describe() string {
	return fmt.Sprintf("%s: %d %s, %d %s", d.Label, d.Views, plural(d.Views, "view", "views"),
		d.Visitors, plural(d.Visitors, "visitor", "visitors"))
}

func (c Chart) summary() string {
	if len(c.Days) == 0 {
		return "No days yet"
	}
	var views int64
	for _, d := range c.Days {
		views += d.Views
	}
	return fmt.Sprintf("Views per day, %s to %s: %d in all, at most %d in a day",
		c.Days[0].Label, c.Days[len(c.Days)-1].Label, views, c.max())
}
