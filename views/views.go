// Package views renders the pages and fragments from view models shaped like
// the screen. It never queries anything: handlers pass in what to show.
package views

import (
	"strconv"
	"time"
)

// Assets are what every page's head needs: the URLs of the static files
// it links to, and htmx's settings.
type Assets struct {
	HTMX    string
	CSS     string
	Favicon string
	Copy    string // the counter page's Copy buttons
	// HTMXTimeout is how long htmx waits for an answer (0: htmx's default).
	HTMXTimeout time.Duration
}

// Counter is the live counter fragment, swapped by htmx on click and poll.
type Counter struct {
	Hits int64
	// Today, when set, adds today's views and visitors (named counters).
	Today *Today
	// Problem, when set, is shown instead of the count (database down, …).
	Problem string
	// Poll is the URL the fragment refreshes itself from, every PollEvery.
	Poll      string
	PollEvery time.Duration
	// ShowBots adds today's bots, which are not counted as views (the
	// counter's own page: a first test with curl should not look broken).
	ShowBots bool
}

// Today is a counter's figures of the current day.
type Today struct {
	Views, Visitors, Bots int64
}

// Page is the whole home page.
type Page struct {
	Assets  Assets
	Counter Counter
	Hit     string // where the +1 button posts; empty: no button
}

// CounterPage is the page of a named counter, /c/{name}.
type CounterPage struct {
	Assets  Assets
	Name    string
	Path    string // the page's own, where the don't-count form returns
	Counter Counter
	Hit     string // where the +1 button posts; empty: no button
	Chart   Chart
	// Snippets to copy, with this server's address, and the badge as shown.
	Badge, JSON  string
	Embeds       []Snippet
	BadgePreview string
	// DontCount says this browser asked not to be counted;
	// DontCountAction is where the form that switches it posts.
	DontCount       bool
	DontCountAction string
}

// Snippet is code to copy, under its label.
type Snippet struct {
	ID, Label, Code string
}

// Embed is the minimal page for an iframe, /c/{name}/embed.
type Embed struct {
	Assets  Assets
	Name    string
	Counter Counter
	Hit     string // where the +1 button posts; empty: no button
	Theme   string // auto (the visitor's preference), light or dark
	Compact bool   // the total alone
}

// Error is a page for a request that went wrong as a whole (404, 405, …).
type Error struct {
	Assets  Assets
	Title   string
	Message string
	Home    string // the link back to the front page; empty when that is what failed
}

// trigger renders a poll interval in htmx's syntax ("every 2s", "every 500ms").
func trigger(d time.Duration) string {
	if d%time.Second == 0 {
		return "every " + strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return "every " + strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// htmxConfig is the content of a page's htmx-config. htmx's own indicator
// CSS is turned off: it would be an inline style, which the CSP forbids.
func htmxConfig(a Assets) string {
	c := "includeIndicatorCSS:false"
	if a.HTMXTimeout > 0 {
		c += " defaultTimeout:" + strconv.FormatInt(a.HTMXTimeout.Milliseconds(), 10)
	}
	return c
}

func times(n int64) string {
	if n == 1 {
		return "time"
	}
	return "times"
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// colorScheme is the color-scheme an embed's theme declares.
func colorScheme(theme string) string {
	if theme == "light" || theme == "dark" {
		return theme
	}
	return "light dark"
}
