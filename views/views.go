// Package views renders the pages and fragments from view models shaped like
// the screen. It never queries anything: handlers pass in what to show.
package views

import (
	"strconv"
	"time"
)

// Assets are the URLs of the static files a page links to.
type Assets struct {
	HTMX    string
	CSS     string
	Favicon string
}

// Counter is the live counter fragment, swapped by htmx on click and poll.
type Counter struct {
	Hits int64
	// Problem, when set, is shown instead of the count (database down, …).
	Problem string
	// PollEvery is how often the fragment refreshes itself.
	PollEvery time.Duration
}

// Page is the whole home page.
type Page struct {
	Assets  Assets
	Counter Counter
}

// Error is a page for a request that went wrong as a whole (404, 405, …).
type Error struct {
	Assets  Assets
	Title   string
	Message string
}

// trigger renders a poll interval in htmx's syntax ("every 2s", "every 500ms").
func trigger(d time.Duration) string {
	if d%time.Second == 0 {
		return "every " + strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return "every " + strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func times(n int64) string {
	if n == 1 {
		return "time"
	}
	return "times"
}
