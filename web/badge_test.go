package web_test

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
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
	testdb.Exec(t, dbURL, "insert into counters (name, hits) values ($1, $2)", name, hits)
}

// badgeCounted is everything a badge view can change, summed: the counters
// (their number too, so an unknown counter never appears), their totals,
// their day rows.
func badgeCounted(t *testing.T, dbURL string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, `select
		(select count(*) + coalesce(sum(hits), 0) from counters) +
		(select coalesce(sum(views + visitors + bots + filtered), 0) from counter_days)`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// badgeSVG is what the tests read back from a badge.
type badgeSVG struct {
	Height string `xml:"height,attr"`
	Title  string `xml:"title"`
	Texts  []struct {
		Text   string `xml:",chardata"`
		Fill   string `xml:"fill,attr"`
		Shadow string `xml:"aria-hidden,attr"`
	} `xml:"g>text"`
	Boxes []struct {
		Fill string `xml:"fill,attr"`
	} `xml:"g>rect"`
}

// readBadge parses a badge answer and returns its title and its two texts
// as drawn (label, value; not their shadows), checking the answer is an
// SVG image.
func readBadge(t *testing.T, resp *http.Response, body string) (title, label, value string) {
	t.Helper()
	b := parseBadgeSVG(t, resp, body)
	var texts []string
	for _, text := range b.Texts {
		if text.Shadow == "" {
			texts = append(texts, text.Text)
		}
	}
	if len(texts) != 2 {
		t.Fatalf("badge texts %+v", b.Texts)
	}
	return b.Title, texts[0], texts[1]
}

func parseBadgeSVG(t *testing.T, resp *http.Response, body string) badgeSVG {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "image/svg+xml; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	var b badgeSVG
	if err := xml.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("badge is not XML: %v\n%s", err, body)
	}
	return b
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
		"show=visitors&count=0":        "visitors today: 2", // a README reads as all-time
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
	wantBadgeHeaders(t, resp)
	etag := resp.Header.Get("ETag")
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

// wantErrorBadge checks an error answer is a badge, for an <img>: the
// status, the badge's headers, the label, the value in a word in the error
// colour, and the message in the title.
func wantErrorBadge(t *testing.T, resp *http.Response, body string, status int, label, value, message string) {
	t.Helper()
	wantStatus(t, resp, status)
	b := parseBadgeSVG(t, resp, body)
	title, gotLabel, gotValue := readBadge(t, resp, body)
	if gotLabel != label || gotValue != value || !strings.HasPrefix(title, label+": "+value+" — "+message) {
		t.Errorf("badge says %q | %q titled %q; want %q | %q titled %q…", gotLabel, gotValue, title, label, value, label+": "+value+" — "+message)
	}
	if len(b.Boxes) < 2 || b.Boxes[1].Fill != "#9f9f9f" {
		t.Errorf("value box %+v, want the error colour #9f9f9f", b.Boxes)
	}
	wantBadgeHeaders(t, resp)
}

// wantBadgeHeaders checks what every badge answer has, error or not.
func wantBadgeHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":            "image/svg+xml; charset=utf-8",
		"Cache-Control":           "no-cache, no-store, must-revalidate, max-age=0",
		"Expires":                 "0",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// Bad parameters get 400 with an error badge, "invalid", whose title says
// what is wrong; they count nothing, and HEAD gets the same without a body.
func TestBadgeRefusesBadParameters(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 7)
	const (
		badLabel = "label must be 1 to 40 printable characters."
		badColor = "color must be a colour name (shields.io's, like brightgreen, or a CSS one, like navy) or 3 or 6 hex digits, like 4c1 or 44cc11."
		badQuery = "The query string is not valid"
	)
	for _, tt := range []struct {
		query, label, message string
	}{
		{"label=" + strings.Repeat("x", 41), "views", badLabel},
		{"label=", "views", badLabel},
		{"label=%20%20", "views", invisibleLabel},
		{"label=a%00b", "views", badLabel},
		{"label=a%0Ab", "views", badLabel},
		{"label=a%E2%80%AEb", "views", badLabel}, // right-to-left override
		{"label=%FF", "views", badLabel},
		{"show=visitors&label=", "visitors today", badLabel}, // a bad label: the figure's own
		{"label=readers&color=red%3Bx", "readers", badColor}, // a good label stays
		{"color=%2312", "views", badColor},
		{"color=javascript:alert(1)", "views", badColor},
		{"color=", "views", badColor},
		{"color=navyblue", "views", badColor},
		{"labelColor=url(%23s)", "views", "labelColor must be a colour name (shields.io's"},
		{"count=2", "views", "count must be 0 or 1."},
		{"count=", "views", "count must be 0 or 1."},
		{"count=yes", "views", "count must be 0 or 1."},
		{"show=bogus", "views", "show must be views, visitors or today."},
		{"abbr=x", "views", "abbr must be 0 or 1."},
		{"style=social", "views", "style must be flat, flat-square, for-the-badge or plastic."},
		{"style=", "views", "style must be flat, flat-square, for-the-badge or plastic."},
		{"style=Flat", "views", "style must be flat, flat-square, for-the-badge or plastic."},
		{"style=flat&style=plastic", "views", "style is given more than once."},
		{"label=a&label=b", "a", "label is given more than once."},
		{"color=red;x", "views", badQuery},
		{"label=%zz", "views", badQuery},
	} {
		t.Run(tt.query, func(t *testing.T) {
			before := badgeCounted(t, a.dbURL)
			resp, body := a.do(t, "GET", "/c/blog/badge.svg?"+tt.query, nil, nil)
			wantErrorBadge(t, resp, body, http.StatusBadRequest, tt.label, "invalid", tt.message)
			resp, body = a.do(t, "HEAD", "/c/blog/badge.svg?"+tt.query, nil, nil)
			wantStatus(t, resp, http.StatusBadRequest)
			wantBadgeHeaders(t, resp)
			if body != "" {
				t.Errorf("HEAD answered a body: %q", body)
			}
			if after := badgeCounted(t, a.dbURL); after != before {
				t.Errorf("a refused badge counted: %d, then %d", before, after)
			}
		})
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 7 {
		t.Errorf("refused badges counted: %d hits, want 7", got)
	}
}

// invisibleLabel is the message for a label that would draw nothing.
const invisibleLabel = "label must have a visible character, not only spaces, blanks, fillers, zero-width characters or combining marks."

// A label that would draw nothing (spaces, blank or filler characters,
// zero-width ones, combining marks with no base) is refused like any bad
// parameter: an empty-looking badge would hide what it counts. Visible
// characters among them are kept as they are.
func TestBadgeRefusesInvisibleLabels(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 7)
	for _, tt := range []struct{ what, label string }{
		{"a space", " "},
		{"spaces", "   "},
		{"a tab", "\t"},
		{"no-break spaces", "\u00a0\u00a0"},
		{"ideographic space", "\u3000"},
		{"figure and thin spaces (Zs)", "\u2007\u2009\u202f"},
		{"braille blank", "\u2800"},
		{"braille blanks and spaces", "\u2800 \u2800"},
		{"Hangul filler", "\u3164"},
		{"Hangul choseong filler", "\u115f"},
		{"Hangul jungseong filler", "\u1160"},
		{"halfwidth Hangul filler", "\uffa0"},
		{"zero-width space", "\u200b"},
		{"zero-width non-joiner", "\u200c"},
		{"zero-width joiner", "\u200d"},
		{"left-to-right mark", "\u200e"},
		{"right-to-left mark", "\u200f"},
		{"word joiner", "\u2060"},
		{"invisible plus", "\u2064"},
		{"byte order mark", "\ufeff"},
		{"a combining mark (Mn)", "\u0301"},
		{"combining marks", "\u0301\u0308\u0327"},
		{"an enclosing mark (Me)", "\u20dd"},
		{"a spacing mark (Mc)", "\u0903"},
		{"combining grapheme joiner", "\u034f"},
		{"a variation selector", "\ufe0f"},
		{"a mark on a filler", "\u3164\u0301"},
		{"a mix of them", "\u3164 \u2800\u200b\u00a0\u0301\ufeff"},
	} {
		t.Run(tt.what, func(t *testing.T) {
			query := "label=" + url.QueryEscape(tt.label)
			before := badgeCounted(t, a.dbURL)
			resp, body := a.do(t, "GET", "/c/blog/badge.svg?"+query, nil, nil)
			wantErrorBadge(t, resp, body, http.StatusBadRequest, "views", "invalid", invisibleLabel)
			if after := badgeCounted(t, a.dbURL); after != before {
				t.Errorf("a refused badge counted: %d, then %d", before, after)
			}
		})
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 7 {
		t.Errorf("refused badges counted: %d hits, want 7", got)
	}

	for _, label := range []string{
		"views",
		" views ",
		"my\u00a0views",
		"e\u0301te\u0301",                      // marks on their base
		"\u0928\u092e\u0938\u094d\u0924\u0947", // नमस्ते: Mc and Mn marks
		"\u2800x",
		"\u3164\u3131", // a filler beside a visible jamo
		"\u2b50\ufe0f", // an emoji and its variation selector
	} {
		resp, body := a.do(t, "GET", "/c/blog/badge.svg?count=0&label="+url.QueryEscape(label), nil, nil)
		wantStatus(t, resp, http.StatusOK)
		if _, got, _ := readBadge(t, resp, body); got != label {
			t.Errorf("label %+q drawn as %+q, want it as given", label, got)
		}
	}
}

// A bad counter name is 400 and an unknown (renamed, deleted) counter 404,
// each as an error badge; neither counts anything.
func TestBadgeOfBadOrUnknownCounter(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "old", 3)
	resp, body := a.do(t, "GET", "/c/old/badge.svg?count=0", nil, nil)
	wantStatus(t, resp, 200)
	testdb.Exec(t, a.dbURL, "delete from counters where name = 'old'")
	before := badgeCounted(t, a.dbURL)

	resp, body = a.do(t, "GET", "/c/Bad%20Name/badge.svg", nil, nil)
	wantErrorBadge(t, resp, body, http.StatusBadRequest, "views", "invalid", "That is not a valid counter name")
	for _, tt := range []struct{ path, label string }{
		{"/c/old/badge.svg", "views"},
		{"/c/nope/badge.svg?count=0", "views"},
		{"/c/nope/badge.svg?label=readers", "readers"},
		{"/c/nope/badge.svg?show=visitors", "visitors today"},
	} {
		resp, body = a.do(t, "GET", tt.path, nil, nil)
		wantErrorBadge(t, resp, body, http.StatusNotFound, tt.label, "not found", "That counter does not exist.")
		resp, body = a.do(t, "HEAD", tt.path, nil, nil)
		wantStatus(t, resp, http.StatusNotFound)
		wantBadgeHeaders(t, resp)
		if body != "" {
			t.Errorf("HEAD %s answered a body", tt.path)
		}
	}
	// Parameters are checked before the counter is looked up.
	resp, body = a.do(t, "GET", "/c/nope/badge.svg?count=2", nil, nil)
	wantErrorBadge(t, resp, body, http.StatusBadRequest, "views", "invalid", "count must be 0 or 1.")
	if after := badgeCounted(t, a.dbURL); after != before {
		t.Errorf("error badges counted: %d, then %d", before, after)
	}
}

// Styles, CSS colour names and the text's colour, through the URL; the
// drawing itself is views' to test.
func TestBadgeLooks(t *testing.T) {
	a := newApp(t, web.Config{})
	seedBadgeCounter(t, a.dbURL, "blog", 41)
	for _, tt := range []struct {
		query, height, label string
	}{
		{"", "20", "views"},
		{"style=flat", "20", "views"},
		{"style=flat-square", "20", "views"},
		{"style=plastic", "18", "views"},
		{"style=for-the-badge", "28", "VIEWS"},
	} {
		resp, body := a.do(t, "GET", "/c/blog/badge.svg?count=0&"+tt.query, nil, nil)
		wantStatus(t, resp, 200)
		b := parseBadgeSVG(t, resp, body)
		title, label, value := readBadge(t, resp, body)
		if b.Height != tt.height || label != tt.label || value != "41" || title != "views: 41" {
			t.Errorf("?%s: height %s, %q | %q titled %q; want %s, %q | 41", tt.query, b.Height, label, value, title, tt.height, tt.label)
		}
		if square := !strings.Contains(body, "rx="); square != (tt.query == "style=flat-square" || tt.query == "style=for-the-badge") {
			t.Errorf("?%s: square corners %v", tt.query, square)
		}
	}
	// An error badge keeps the valid parameters' style and label colour.
	resp, body := a.do(t, "GET", "/c/blog/badge.svg?style=for-the-badge&labelColor=navy&color=nope", nil, nil)
	wantStatus(t, resp, http.StatusBadRequest)
	b := parseBadgeSVG(t, resp, body)
	title, label, value := readBadge(t, resp, body)
	if b.Height != "28" || b.Boxes[0].Fill != "#000080" || label != "VIEWS" || value != "INVALID" ||
		!strings.HasPrefix(title, "views: invalid — color must be") {
		t.Errorf("error badge of height %s, label box %+v: %q | %q titled %q", b.Height, b.Boxes[0], label, value, title)
	}

	for _, tt := range []struct {
		query, labelFill, valueFill, labelText, valueText string
	}{
		{"color=navy", "#555", "#000080", "#fff", "#fff"},
		{"color=NaVy&labelColor=RebeccaPurple", "#663399", "#000080", "#fff", "#fff"},
		{"color=green", "#555", "#97ca00", "#fff", "#fff"}, // shields.io's green, not CSS's
		{"labelColor=fff", "#fff", "#4c1", "#333", "#fff"}, // white text on white was invisible
		{"color=white&labelColor=lightyellow", "#ffffe0", "#ffffff", "#333", "#333"},
	} {
		resp, body := a.do(t, "GET", "/c/blog/badge.svg?count=0&"+tt.query, nil, nil)
		wantStatus(t, resp, 200)
		b := parseBadgeSVG(t, resp, body)
		texts := b.Texts // shadow, label, shadow, value
		if len(b.Boxes) < 2 || b.Boxes[0].Fill != tt.labelFill || b.Boxes[1].Fill != tt.valueFill ||
			len(texts) != 4 || texts[1].Fill != tt.labelText || texts[3].Fill != tt.valueText {
			t.Errorf("?%s: boxes %+v, texts %+v; want %s | %s, text %s | %s", tt.query, b.Boxes, texts, tt.labelFill, tt.valueFill, tt.labelText, tt.valueText)
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
