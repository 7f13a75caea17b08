package web_test

import (
	"context"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/web"
)

// seedBadgeCounter creates a counter straight in the database.
func seedBadgeCounter(t *testing.T, dbURL, name string, hits int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "insert into counters (name, hits) values ($1, $2)", name, hits); err != nil {
		t.Fatal(err)
	}
}

// badgeSVG is what the tests read back from a badge.
type badgeSVG struct {
	Title string   `xml:"title"`
	Texts []string `xml:"g>text"`
}

// readBadge parses a badge answer and returns its title and its two texts
// (label, value), checking the answer is an SVG image.
func readBadge(t *testing.T, resp *http.Response, body string) (title, label, value string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "image/svg+xml; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	var b badgeSVG
	if err := xml.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("badge is not XML: %v\n%s", err, body)
	}
	if len(b.Texts) != 4 { // each text has its shadow
		t.Fatalf("badge texts %q", b.Texts)
	}
	return b.Title, b.Texts[1], b.Texts[3]
}

func TestBadgeCountsAndShows(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 1233)

	resp, body := a.do(t, "GET", "/c/blog/badge.svg", nil, nil)
	wantStatus(t, resp, 200)
	title, label, value := readBadge(t, resp, body)
	if title != "views: 1234" || label != "views" || value != "1234" {
		t.Errorf("badge says %q: %q | %q, want views: 1234", title, label, value)
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 1234 {
		t.Errorf("database has %d hits after one badge view, want 1234", got)
	}

	// Read-only badges: ten of them on a page count nothing.
	for range 10 {
		resp, body = a.do(t, "GET", "/c/blog/badge.svg?count=0", nil, nil)
		wantStatus(t, resp, 200)
		if _, _, value := readBadge(t, resp, body); value != "1234" {
			t.Fatalf("count=0 badge shows %q, want 1234", value)
		}
	}
	// HEAD only reads.
	resp, _ = a.do(t, "HEAD", "/c/blog/badge.svg", nil, nil)
	wantStatus(t, resp, 200)
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 1234 {
		t.Errorf("count=0 badges or HEAD counted: %d hits, want 1234", got)
	}

	resp, body = a.do(t, "GET", "/c/blog/badge.svg?count=1&abbr=1&label=readers&color=blue&labelColor=%23123abc", nil, nil)
	wantStatus(t, resp, 200)
	title, label, value = readBadge(t, resp, body)
	if title != "readers: 1235" || label != "readers" || value != "1.2k" {
		t.Errorf("badge says %q: %q | %q, want readers: 1.2k titled 1235", title, label, value)
	}
	if !strings.Contains(body, `fill="#007ec6"`) || !strings.Contains(body, `fill="#123abc"`) {
		t.Errorf("colours not applied:\n%s", body)
	}
}

func TestBadgeShowsTodaysFigures(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 100)

	resp, body := a.do(t, "GET", "/c/blog/badge.svg?show=today", nil, nil)
	wantStatus(t, resp, 200)
	if title, _, _ := readBadge(t, resp, body); title != "today: 1" {
		t.Errorf("show=today: %q, want today: 1", title)
	}
	// The same visitor again, and another one.
	a.do(t, "GET", "/c/blog/badge.svg", nil, nil)
	other := map[string]string{"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"}
	a.do(t, "GET", "/c/blog/badge.svg", nil, other)

	for query, want := range map[string]string{
		"show=visitors&count=0":        "visitors: 2",
		"show=today&count=0":           "today: 3",
		"show=views&count=0":           "views: 103",
		"show=today&count=0&label=hoy": "hoy: 3",
	} {
		resp, body := a.do(t, "GET", "/c/blog/badge.svg?"+query, nil, nil)
		wantStatus(t, resp, 200)
		if title, _, _ := readBadge(t, resp, body); title != want {
			t.Errorf("?%s: %q, want %q", query, title, want)
		}
	}
}

func TestBadgeHeaders(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 0)
	resp, body := a.do(t, "GET", "/c/blog/badge.svg?count=0", nil, nil)
	wantStatus(t, resp, 200)
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Type":            "image/svg+xml; charset=utf-8",
		"Cache-Control":           "no-cache, no-store, must-revalidate, max-age=0",
		"Expires":                 "0",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if !strings.HasPrefix(body, `<svg xmlns="http://www.w3.org/2000/svg"`) || !strings.Contains(body, `role="img"`) ||
		!strings.Contains(body, `aria-label="views: 0"`) {
		t.Errorf("badge root:\n%.200s", body)
	}
	// Unchanged: 304. A view changes the badge, and its ETag.
	resp, body = a.do(t, "GET", "/c/blog/badge.svg?count=0", nil, map[string]string{"If-None-Match": etag})
	wantStatus(t, resp, http.StatusNotModified)
	if body != "" {
		t.Errorf("304 with a body")
	}
	resp, _ = a.do(t, "GET", "/c/blog/badge.svg", nil, map[string]string{"If-None-Match": etag})
	wantStatus(t, resp, 200)
	if resp.Header.Get("ETag") == etag {
		t.Errorf("ETag unchanged by a view")
	}
}

// Bad parameters get 400 with a message saying what is wrong, and count
// nothing.
func TestBadgeRefusesBadParameters(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 7)
	for _, tt := range []struct {
		query, message string
	}{
		{"label=" + strings.Repeat("x", 41), "label must be 1 to 40 printable characters, not all spaces."},
		{"label=", "label must be 1 to 40 printable characters, not all spaces."},
		{"label=%20%20", "label must be 1 to 40 printable characters, not all spaces."},
		{"label=a%00b", "label must be 1 to 40 printable characters, not all spaces."},
		{"label=a%0Ab", "label must be 1 to 40 printable characters, not all spaces."},
		{"label=a%E2%80%AEb", "label must be 1 to 40 printable characters, not all spaces."}, // right-to-left override
		{"label=%FF", "label must be 1 to 40 printable characters, not all spaces."},
		{"color=red%3Bx", "color must be a colour name ("},
		{"color=%2312", "color must be a colour name ("},
		{"color=javascript:alert(1)", "color must be a colour name ("},
		{"color=", "color must be a colour name ("},
		{"labelColor=url(%23s)", "labelColor must be a colour name ("},
		{"count=2", "count must be 0 or 1."},
		{"count=", "count must be 0 or 1."},
		{"count=yes", "count must be 0 or 1."},
		{"show=bogus", "show must be views, visitors or today."},
		{"abbr=x", "abbr must be 0 or 1."},
		{"label=a&label=b", "label is given more than once."},
		{"color=red;x", "The query string is not valid"},
		{"label=%zz", "The query string is not valid"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := a.do(t, "GET", "/c/blog/badge.svg?"+tt.query, nil, nil)
			wantStatus(t, resp, http.StatusBadRequest)
			if got := parse(t, body).Find(".problem").Text(); !strings.HasPrefix(got, tt.message) {
				t.Errorf("message %q, want %q", got, tt.message)
			}
		})
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 7 {
		t.Errorf("refused badges counted: %d hits, want 7", got)
	}
}

func TestBadgeOfBadOrUnknownCounter(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, body := a.do(t, "GET", "/c/Bad%20Name/badge.svg", nil, nil)
	wantStatus(t, resp, http.StatusBadRequest)
	if got := parse(t, body).Find(".problem").Text(); !strings.HasPrefix(got, "That is not a valid counter name") {
		t.Errorf("message %q", got)
	}
	for _, path := range []string{"/c/nope/badge.svg", "/c/nope/badge.svg?count=0"} {
		resp, body = a.do(t, "GET", path, nil, nil)
		wantStatus(t, resp, http.StatusNotFound)
		if got := parse(t, body).Find(".problem").Text(); got != "That counter does not exist." {
			t.Errorf("%s: message %q", path, got)
		}
	}
}

// With the database down the badge still answers an image, saying so, with
// an honest 503.
func TestBadgeWhenDatabaseIsDown(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	seedBadgeCounter(t, dbURL, "blog", 5)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	a := newAppOn(t, web.Config{}, proxied)
	proxy.SetDown(true)
	waitNotListening(t, a.store)

	resp, body := a.do(t, "GET", "/c/blog/badge.svg", nil, nil)
	wantStatus(t, resp, http.StatusServiceUnavailable)
	if title, _, value := readBadge(t, resp, body); title != "views: unavailable" || value != "unavailable" {
		t.Errorf("badge says %q", title)
	}
	if resp.Header.Get("Retry-After") == "" || resp.Header.Get("ETag") != "" {
		t.Errorf("Retry-After %q, ETag %q; want one and none", resp.Header.Get("Retry-After"), resp.Header.Get("ETag"))
	}

	proxy.SetDown(false)
	resp, body = a.do(t, "GET", "/c/blog/badge.svg", nil, nil)
	wantStatus(t, resp, 200)
	if title, _, _ := readBadge(t, resp, body); title != "views: 6" {
		t.Errorf("after recovery the badge says %q, want views: 6", title)
	}
}
