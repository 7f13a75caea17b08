package web_test

// Browser tests: the real page in headless Chromium, driven over the DevTools
// protocol with chromedp, against the real handler and a real database.
//
// Each test gets its own database, server and browser. Every wait is a
// condition with a deadline (browserTab.waitFor); nothing sleeps for a fixed
// time.
//
// Chromium is required: the tests fail when no browser is found, unless
// HITCOUNTER_SKIP_BROWSER=1. HITCOUNTER_SCREENSHOT=/some/path.png makes the
// tests save screenshots for a human to look at: the page on a desktop at
// that path, on a phone at /some/path-phone.png, and with the database down
// at /some/path-unavailable.png.
//
// Names at package level start with "browser" (or "cdp"): other test files
// of this package are written independently.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
	"github.com/hitcounter/hitcounter/web"
)

const (
	// browserPollInterval is the page's refresh interval in these tests:
	// short, so the tests that wait for a poll stay fast.
	browserPollInterval = 300 * time.Millisecond
	// browserWaitTimeout bounds one wait for something the browser does at
	// once (a swap after a click, a navigation). Generous: -race on 2 cores.
	browserWaitTimeout = 10 * time.Second
	// browserUnavailableText is what the counter says while the database
	// is down.
	browserUnavailableText = "Counter unavailable, retrying…"
)

// TestBrowserClickIncrements: a click on +1 swaps in the new count without
// reloading the page, and the database holds it.
func TestBrowserClickIncrements(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	if n != 1 {
		t.Fatalf("the first view of a fresh database shows %d, want 1 (the view itself counts)", n)
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != n {
		t.Fatalf("database holds %d after the first view, the page shows %d", got, n)
	}
	tab.waitHTMXReady()
	tab.setMarker()

	tab.clickPlusOne()
	tab.waitCount(n+1, browserWaitTimeout)
	tab.checkNotReloaded("the click")
	if got := testdb.Hits(t, a.dbURL, "main"); got != n+1 {
		t.Errorf("database holds %d after one click, want %d", got, n+1)
	}
	if got := a.hits.Load(); got != 1 {
		t.Errorf("server answered %d POST /hit, want 1", got)
	}
	if got := a.pages.Load(); got != 1 {
		t.Errorf("server answered %d GET /, want 1 (the click must not reload the page)", got)
	}

	tab.screenshots()
	tab.logProblems()
}

// TestBrowserSeesOtherVisitorsHits: a hit from someone else shows up on an
// open page through polling, without a reload.
func TestBrowserSeesOtherVisitorsHits(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	tab.waitHTMXReady()
	tab.setMarker()

	a.otherVisitorClicks(t)

	start := time.Now()
	tab.waitCount(n+1, 10*browserPollInterval)
	t.Logf("the page showed the other visitor's hit after %s (poll interval %s)",
		time.Since(start).Round(time.Millisecond), browserPollInterval)
	tab.checkNotReloaded("polling")
	if got := a.pages.Load(); got != 1 {
		t.Errorf("server answered %d GET /, want 1 (polling must not reload the page)", got)
	}
	tab.logProblems()
}

// TestBrowserPollsRevalidate: the browser keeps each poll's answer and
// revalidates it (If-None-Match); unchanged counts come back as 304s, htmx
// keeps polling through them, and a change still shows.
func TestBrowserPollsRevalidate(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	tab.waitHTMXReady()
	tab.setMarker()
	tab.waitFor(20*browserPollInterval, "three polls answered 304", func(context.Context) (bool, string) {
		return a.notModified.Load() >= 3, fmt.Sprintf("%d of %d polls answered 304", a.notModified.Load(), a.polls.Load())
	})
	if got := tab.readCount(); got != n {
		t.Fatalf("after 304s the page shows %d, want %d", got, n)
	}

	// Another visitor's click changes the count: the next poll gets a 200
	// with the new fragment, and 304s resume after it.
	a.otherVisitorClicks(t)
	tab.waitCount(n+1, 10*browserPollInterval)
	after := a.notModified.Load()
	tab.waitFor(20*browserPollInterval, "304s again after the change", func(context.Context) (bool, string) {
		return a.notModified.Load() >= after+2, fmt.Sprintf("%d new 304s", a.notModified.Load()-after)
	})
	if got := tab.readCount(); got != n+1 {
		t.Fatalf("after more 304s the page shows %d, want %d", got, n+1)
	}
	tab.checkNotReloaded("polling")
	tab.logProblems()
}

// TestBrowserClickWinsOverAStalePoll: a poll that read the count before a
// click must not land after it and show the older count.
func TestBrowserClickWinsOverAStalePoll(t *testing.T) {
	chromium := browserPath(t)
	dbURL := testdb.NewMigrated(t)
	// htmx's own request timeout follows the server's (a little longer):
	// a long one keeps it out of the verdict below.
	a := startBrowserAppWith(t, dbURL, dbURL, web.Config{PollInterval: browserPollInterval, RequestTimeout: 20 * time.Second})
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	tab.waitHTMXReady()
	if got := browserEval[float64](tab, `htmx.config.defaultTimeout`); got <= 20000 || got > 25000 {
		t.Fatalf("htmx's timeout is %vms, want a little more than the server's 20s", got)
	}

	hold := &browserPollHold{held: make(chan context.Context, 64), release: make(chan struct{})}
	a.hold.Store(hold)
	var poll context.Context
	select {
	case poll = <-hold.held: // it has read n and waits to answer
	case <-time.After(browserWaitTimeout):
		t.Fatal("no poll arrived")
	}

	tab.clickPlusOne()
	tab.waitCount(n+1, browserWaitTimeout)
	// The click drops the poll at once. Waiting a quarter of htmx's own
	// request timeout keeps that timeout out of the verdict.
	select {
	case <-poll.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the poll that read the count before the click is still waiting: its older count would land after the click's")
	}
	a.hold.Store(nil)
	close(hold.release)

	// Later polls agree with the click.
	polls := a.polls.Load()
	tab.waitFor(10*browserPollInterval, "two more polls", func(context.Context) (bool, string) {
		return a.polls.Load() >= polls+2, fmt.Sprintf("%d polls", a.polls.Load()-polls)
	})
	if got := tab.readCount(); got != n+1 {
		t.Fatalf("after the polls the page shows %d, want %d", got, n+1)
	}
	tab.logProblems()
}

// TestBrowserWithoutJavaScript: with JavaScript off the +1 button is a plain
// form: POST, 303 to /?counted, and that page shows the new count without
// counting another view.
func TestBrowserWithoutJavaScript(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	tab := startBrowser(t, chromium)

	if _, err := chromedp.Call(tab.ctx, emulation.SetScriptExecutionDisabled,
		emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable JavaScript: %v", err)
	}
	tab.load(a.URL)
	// DevTools can still evaluate; the page's own scripts cannot run.
	if typ := browserEval[string](tab, `typeof window.htmx`); typ != "undefined" {
		t.Fatalf("typeof htmx = %q with JavaScript disabled; want undefined (is JavaScript really off?)", typ)
	}
	n := tab.readCount()

	tab.clickPlusOne()
	tab.waitFor(browserWaitTimeout, "the navigation to /?counted", func(ctx context.Context) (bool, string) {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			return false, err.Error()
		}
		return loc == a.URL+"/?counted", "location " + loc
	})
	tab.waitCount(n+1, browserWaitTimeout)
	if got := testdb.Hits(t, a.dbURL, "main"); got != n+1 {
		t.Errorf("database holds %d after one click, want %d", got, n+1)
	}
	if got := a.hits.Load(); got != 1 {
		t.Errorf("server answered %d POST /hit, want 1", got)
	}
	if got := a.pages.Load(); got != 2 {
		t.Errorf("server answered %d GET /, want 2 (the page, then /?counted)", got)
	}
	if got := a.polls.Load(); got != 0 {
		t.Errorf("server answered %d GET /count with JavaScript off, want 0", got)
	}
	tab.logProblems()
}

// TestBrowserConsoleClean: loading the page, a click and a poll leave the
// console free of errors and warnings, and the page asks nothing of any
// other origin.
func TestBrowserConsoleClean(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	tab.waitHTMXReady()
	tab.clickPlusOne()
	tab.waitCount(n+1, browserWaitTimeout)

	// Let a poll happen after the click, all the way: the server answers
	// it and the browser swaps the answer in.
	p0 := a.polls.Load()
	tab.setMarker()
	tab.waitFor(browserWaitTimeout, "a poll answered and swapped in after the click", func(ctx context.Context) (bool, string) {
		polls := a.polls.Load()
		swapped, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`document.getElementById('counter') !== null && document.getElementById('counter').__hitcounterMarker === undefined`))
		if err != nil {
			return false, err.Error()
		}
		return polls > p0 && swapped, fmt.Sprintf("GET /count answered %d times (%d before), counter swapped: %v", polls, p0, swapped)
	})
	tab.waitCount(n+1, browserWaitTimeout)

	problems, requests := tab.events.snapshot()
	for _, p := range problems {
		t.Errorf("browser reported: %s", p)
	}
	if len(requests) == 0 {
		t.Error("no network requests were seen; is the listener working?")
	}
	for _, u := range requests {
		if !browserSameOrigin(u, a.URL) && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "about:") {
			t.Errorf("request outside the test server's origin %s: %s", a.URL, u)
		}
	}
	if t.Failed() {
		t.Logf("requests: %q", requests)
	}
}

// TestBrowserDatabaseDownRecovers: with the database down the page says so in
// place of the count and keeps polling; once the database is back the count
// returns, without a reload.
func TestBrowserDatabaseDownRecovers(t *testing.T) {
	chromium := browserPath(t)
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	a := startBrowserAppOn(t, proxied, dbURL)
	tab := startBrowser(t, chromium)

	tab.load(a.URL)
	n := tab.readCount()
	tab.waitHTMXReady()
	tab.setMarker()

	proxy.SetDown(true)
	start := time.Now()
	tab.waitFor(browserWaitTimeout, "the counter to say "+strconv.Quote(browserUnavailableText), func(ctx context.Context) (bool, string) {
		text := tab.counterText(ctx)
		return text == browserUnavailableText, "counter text " + strconv.Quote(text)
	})
	t.Logf("the page showed the outage after %s", time.Since(start).Round(time.Millisecond))
	if browserEval[bool](tab, `document.getElementById('count') !== null`) {
		t.Error("#count is still on the page while the database is down")
	}
	tab.saveScreenshot("-unavailable")

	proxy.SetDown(false)
	start = time.Now()
	tab.waitCount(n, browserWaitTimeout)
	t.Logf("the page showed the count again %s after the database came back", time.Since(start).Round(time.Millisecond))
	tab.checkNotReloaded("the outage")
	if got := testdb.Hits(t, dbURL, "main"); got != n {
		t.Errorf("database holds %d after the outage, want %d (polls only read)", got, n)
	}
	tab.logProblems()
}

// --- the app under test ---

// browserApp is the whole HTTP stack on a database of its own, counting the
// requests it has answered.
type browserApp struct {
	URL   string
	dbURL string       // the database itself, not through any proxy
	pages atomic.Int64 // GET / answered
	hits  atomic.Int64 // POST /hit answered
	polls atomic.Int64 // GET /count answered
	// notModified counts GET /count answered 304 (the browser revalidated).
	notModified atomic.Int64
	// hold, when set, keeps each poll's answer (read at arrival) back until
	// released or abandoned by the browser.
	hold atomic.Pointer[browserPollHold]
}

type browserPollHold struct {
	held    chan context.Context // each held poll's request context
	release chan struct{}
}

// TestBrowserNamedCounter: a named counter's page shows its chart, a click
// counts without a reload, and another visitor's click arrives by polling.
func TestBrowserNamedCounter(t *testing.T) {
	chromium := browserPath(t)
	a := startBrowserApp(t)
	testdb.Exec(t, a.dbURL, `insert into counters (name, hits) values ('blog', 40)`)
	// History: views and visitors on some of the last days.
	testdb.Exec(t, a.dbURL, `insert into counter_days (counter, day, views, visitors)
		select 'blog', current_date - n, (n * 7) % 13 + 1, (n * 7) % 13 / 2 + 1
		from generate_series(1, 29) n where n % 4 <> 0`)
	tab := startBrowser(t, chromium)
	tab.hit = "/c/blog/hit?page"

	tab.load(a.URL + "/c/blog")
	if n := tab.readCount(); n != 41 {
		t.Fatalf("the view shows %d, want 41", n)
	}
	bars := browserEval[float64](tab, `document.querySelectorAll('#chart g.day').length`)
	tall := browserEval[float64](tab, `[...document.querySelectorAll('#chart rect.views')].filter(r => r.getBoundingClientRect().height > 0).length`)
	if bars != 30 || tall < 20 {
		t.Fatalf("the chart shows %v days, %v of them with a visible bar; want 30 and at least 20", bars, tall)
	}
	if box := browserEval[float64](tab, `document.getElementById('chart').getBoundingClientRect().height`); box < 50 {
		t.Fatalf("the chart is %vpx tall: not visible", box)
	}
	tab.waitHTMXReady()
	tab.setMarker()

	tab.clickPlusOne()
	tab.waitFigures(42, 2)
	tab.checkNotReloaded("the click")

	// Another visitor, JavaScript off: the poll brings the change.
	resp, err := (&http.Client{
		Timeout:       browserWaitTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}).PostForm(a.URL+"/c/blog/hit", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another visitor's click: %s", resp.Status)
	}
	tab.waitFigures(43, 3)
	// The chart follows: its last bar is today's, with all three views.
	tab.waitFor(browserWaitTimeout, "today's bar to show the 3 views", func(ctx context.Context) (bool, string) {
		label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#chart g.day')].pop()?.getAttribute('aria-label') ?? ''`))
		return err == nil && strings.Contains(label, ": 3 views,"), label
	})
	tab.checkNotReloaded("polling")
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 43 {
		t.Errorf("the database holds %d, want 43", got)
	}
	tab.screenshots()

	// Light and dark: the bars and the page follow the colour scheme.
	const colours = `[getComputedStyle(document.querySelector('#chart rect.views')).fill,
		getComputedStyle(document.querySelector('#chart rect.visitors')).fill,
		getComputedStyle(document.body).backgroundColor].join(' / ')`
	light := browserEval[string](tab, colours)
	ctx, cancel := context.WithTimeout(tab.ctx, browserWaitTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	dark := browserEval[string](tab, colours)
	if light == dark || strings.Count(light, "/") != 2 {
		t.Errorf("the chart's colours: light %q, dark %q: want each set, and different", light, dark)
	}
	tab.saveScreenshot("-dark")
	tab.logProblems()
}

// A blogger's path: a counter created with the total carried over from a
// hosted service; the counter page's badge and embed snippets, pasted as
// they are into a page of another origin (allowed by EMBED_ORIGINS), render:
// the badge as an image of a badge's size, each embed with all it promises
// within its stated size, nothing cut and nothing to scroll; a real click
// on +1 in the embed counts; and a badge whose parameter the blogger got
// wrong is still an image, an SVG saying "invalid", not a broken one.
func TestBrowserBloggerPath(t *testing.T) {
	chromium := browserPath(t)
	var blogPage atomic.Value
	blog := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, blogPage.Load().(string))
	}))
	t.Cleanup(blog.Close)
	dbURL := testdb.NewMigrated(t)
	a := startBrowserAppWith(t, dbURL, dbURL, web.Config{PollInterval: browserPollInterval, EmbedOrigins: []string{blog.URL}})
	// The total carried over from a hosted counter (as long as they come),
	// with its last days, as the owner's import writes them.
	store, err := db.Open(dbURL, db.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	total := int64(123456789)
	today := store.Today()
	carried := []db.Day{{Day: today.AddDate(0, 0, -2), Views: 40, Visitors: 30}, {Day: today.AddDate(0, 0, -1), Views: 50, Visitors: 35}}
	if _, err := store.Import(context.Background(), "blogger", "blog", carried, &total); err != nil {
		t.Fatal(err)
	}
	tab := startBrowser(t, chromium)

	// The snippets, as the counter page offers them.
	tab.load(a.URL + "/c/blog")
	type snippet struct{ ID, Code string }
	snippets := browserEval[[]snippet](tab, `[...document.querySelectorAll('textarea[id^="snippet-iframe"]')].map(t => ({ID: t.id, Code: t.value}))`)
	if len(snippets) < 2 {
		t.Fatalf("the page offers %d embed snippets, want the full and the compact one", len(snippets))
	}
	markdown := browserEval[string](tab, `document.getElementById('snippet-badge').value`)
	m := regexp.MustCompile(`^\[!\[[^\]]*\]\((\S+/badge\.svg)\)\]\((\S+)\)$`).FindStringSubmatch(markdown)
	if m == nil || m[1] != a.URL+"/c/blog/badge.svg" || m[2] != a.URL+"/c/blog" {
		t.Fatalf("the badge snippet %q: want Markdown of the badge linking to the page", markdown)
	}
	badgeURL := m[1]
	page := `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>A blog</title></head><body>` +
		`<p><a href="` + m[2] + `"><img id="badge" src="` + badgeURL + `" alt="views"></a> ` +
		`<img id="broken" src="` + badgeURL + `?color=nope" alt="views"></p>`
	for _, s := range snippets {
		if !strings.Contains(s.Code, `style="border:0"`) || !strings.Contains(s.Code, `src="`+a.URL+`/c/blog/embed?`) {
			t.Errorf("snippet %s: %s", s.ID, s.Code)
		}
		page += "<p>" + s.Code + "</p>"
	}
	blogPage.Store(page + "</body></html>")
	before := testdb.Hits(t, dbURL, "blog")
	tab.load(blog.URL)

	// Both badges are images of a badge's size: the broken one says so.
	type img struct {
		Complete      bool
		Width, Height float64
	}
	for _, id := range []string{"badge", "broken"} {
		tab.waitFor(browserWaitTimeout, "the "+id+" badge to render", func(ctx context.Context) (bool, string) {
			got, err := chromedp.Run(ctx, chromedp.Evaluate[img](`(i => ({Complete: i.complete, Width: i.naturalWidth, Height: i.naturalHeight}))(document.getElementById('`+id+`'))`))
			return err == nil && got.Complete && got.Width >= 60 && got.Height == 20, fmt.Sprintf("%+v %v", got, err)
		})
	}
	resp, err := http.Get(badgeURL + "?color=nope")
	if err != nil {
		t.Fatal(err)
	}
	svg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/svg+xml") || !strings.Contains(string(svg), ">invalid</text>") {
		t.Errorf("the broken badge: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), svg)
	}

	ctx, cancel := context.WithTimeout(tab.ctx, browserWaitTimeout)
	defer cancel()
	// The iframes, once each has loaded its document and shows a count.
	var frames []*chromedp.Node
	tab.waitFor(browserWaitTimeout, "each embed to show a count", func(ctx context.Context) (bool, string) {
		ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		var err error
		frames, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("iframe"), chromedp.AtLeast(len(snippets))))
		if err != nil {
			return false, "the blog's iframes: " + err.Error()
		}
		for i, f := range frames {
			if f.ContentDocument == nil {
				return false, snippets[i].ID + ": no document yet"
			}
			if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#count"), chromedp.FromNode(f))); err != nil {
				return false, snippets[i].ID + ": no count shown: " + err.Error()
			}
		}
		return true, ""
	})
	var button *dom.BoxModel
	for i, f := range frames {
		id := snippets[i].ID
		// The page's first paragraph holds the badges, each next one an embed.
		frame, err := chromedp.Run(ctx, chromedp.Dimensions(chromedp.CSS(fmt.Sprintf("p:nth-of-type(%d) iframe", i+2))))
		if err != nil {
			t.Fatal(err)
		}
		// Nothing to scroll: the document fits the iframe.
		for _, dim := range []string{"Width", "Height"} {
			scroll, err := chromedp.Run(ctx, chromedp.JavascriptAttribute[float64](chromedp.CSS("html"), "scroll"+dim, chromedp.FromNode(f)))
			if err != nil {
				t.Fatal(err)
			}
			client, err := chromedp.Run(ctx, chromedp.JavascriptAttribute[float64](chromedp.CSS("html"), "client"+dim, chromedp.FromNode(f)))
			if err != nil {
				t.Fatal(err)
			}
			if scroll > client {
				t.Errorf("%s: the embed's content is %v px in %s, its iframe shows %v: it scrolls", id, scroll, strings.ToLower(dim), client)
			}
		}
		// Everything it promises lies within the iframe's box.
		shown := []string{"#count", "button"}
		if !strings.Contains(id, "compact") {
			shown = append(shown, "#today", "#visitors")
		}
		for _, sel := range shown {
			box, err := chromedp.Run(ctx, chromedp.Dimensions(chromedp.CSS(sel), chromedp.FromNode(f)))
			if err != nil {
				t.Fatalf("%s: %s: %v", id, sel, err)
			}
			if !browserInside(box.Border, frame.Content) {
				t.Errorf("%s: %s at %v lies outside the iframe at %v", id, sel, box.Border, frame.Content)
			}
			if sel == "button" && button == nil {
				button = box
			}
		}
	}
	// Each embed and the good badge counted a view; the broken badge not.
	shown := before + int64(len(frames)) + 1
	tab.waitFor(browserWaitTimeout, "each embed's view and the badge's counted", func(context.Context) (bool, string) {
		got := testdb.Hits(t, dbURL, "blog")
		return got == shown, fmt.Sprint(got)
	})
	if t.Failed() {
		tab.saveScreenshot("-embeds")
		t.FailNow()
	}

	// A click where the first embed's +1 is, as a person clicks: it counts,
	// and the embed shows the new count.
	x, y := browserCentre(button.Border)
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(x, y)); err != nil {
		t.Fatalf("click +1 in the embed: %v", err)
	}
	want := strconv.FormatInt(shown+1, 10)
	tab.waitFor(browserWaitTimeout, "the embed to show "+want, func(ctx context.Context) (bool, string) {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#count"), chromedp.FromNode(frames[0])))
		if err != nil {
			return false, err.Error()
		}
		return s == want, s
	})
	if got := testdb.Hits(t, dbURL, "blog"); strconv.FormatInt(got, 10) != want {
		t.Errorf("the database holds %d, want %s", got, want)
	}
	tab.saveScreenshot("-embeds")
	tab.logProblems()
}

// browserInside says whether quad (x, y pairs, as DevTools gives a box)
// lies within box.
func browserInside(quad, box dom.Quad) bool {
	const slack = 0.5 // sub-pixel rounding
	for i := 0; i+1 < len(quad); i += 2 {
		if quad[i] < box[0]-slack || quad[i] > box[2]+slack || quad[i+1] < box[1]-slack || quad[i+1] > box[5]+slack {
			return false
		}
	}
	return len(quad) == 8 && len(box) == 8
}

// browserCentre is the middle of a quad.
func browserCentre(q dom.Quad) (x, y float64) {
	return (q[0] + q[4]) / 2, (q[1] + q[5]) / 2
}

// waitFigures waits until a named counter's fragment shows total in all
// and today views today.
func (b *browserTab) waitFigures(total, today int64) {
	b.t.Helper()
	want := fmt.Sprintf("%d %d", total, today)
	b.waitFor(browserWaitTimeout, "the counter to read "+want, func(ctx context.Context) (bool, string) {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(document.getElementById('count')?.textContent ?? '') + ' ' + (document.getElementById('today')?.textContent ?? '')`))
		if err != nil {
			return false, err.Error()
		}
		return s == want, fmt.Sprintf("reads %q (counter: %q)", s, b.counterText(ctx))
	})
}

// startBrowserApp serves the app on a fresh database of its own.
func startBrowserApp(t *testing.T) *browserApp {
	t.Helper()
	dbURL := testdb.NewMigrated(t)
	return startBrowserAppOn(t, dbURL, dbURL)
}

// startBrowserAppOn serves the app with its store on storeURL; dbURL is the
// same database reached directly, for checks.
func startBrowserAppOn(t *testing.T, storeURL, dbURL string) *browserApp {
	t.Helper()
	return startBrowserAppWith(t, storeURL, dbURL, web.Config{PollInterval: browserPollInterval})
}

// startBrowserAppWith is startBrowserAppOn with the server's configuration.
func startBrowserAppWith(t *testing.T, storeURL, dbURL string, cfg web.Config) *browserApp {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := db.Open(storeURL, db.DefaultConfig(), logger)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(store.Close)
	h, err := web.NewServer(cfg, store, assets.FS, assets.HTMX, logger)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	a := &browserApp{dbURL: dbURL}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold := a.hold.Load(); hold != nil && r.URL.Path == "/count" {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			hold.held <- r.Context()
			select {
			case <-hold.release:
			case <-r.Context().Done():
				return
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			a.polls.Add(1)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		h.ServeHTTP(ww, r)
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/count" && ww.Status() == http.StatusNotModified:
			a.notModified.Add(1)
			a.polls.Add(1)
		case r.Method == http.MethodGet && r.URL.Path == "/":
			a.pages.Add(1)
		case r.Method == http.MethodPost && r.URL.Path == "/hit":
			a.hits.Add(1)
		case r.Method == http.MethodGet && r.URL.Path == "/count":
			a.polls.Add(1)
		}
	}))
	t.Cleanup(srv.Close) // runs before store.Close: no request outlives the store
	a.URL = srv.URL
	return a
}

// otherVisitorClicks is another visitor's +1 with JavaScript off: a plain
// form post, answered with the redirect to /?counted (not followed).
func (a *browserApp) otherVisitorClicks(t *testing.T) {
	t.Helper()
	client := &http.Client{
		Timeout:       browserWaitTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.PostForm(a.URL+"/hit", url.Values{})
	if err != nil {
		t.Fatalf("POST /hit from another client: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?counted" {
		t.Fatalf("POST /hit from another client: %s, Location %q; want 303 to /?counted",
			resp.Status, resp.Header.Get("Location"))
	}
}

// --- the browser ---

var browserNames = []string{"chromium", "chromium-browser", "google-chrome"}

// browserPath finds Chromium. Tests call it first, so a skip costs nothing.
// No browser fails the test, since the browser tests are part of what
// `make test` checks; HITCOUNTER_SKIP_BROWSER=1 skips it instead.
func browserPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("HITCOUNTER_SKIP_BROWSER") == "1" {
		t.Skip("HITCOUNTER_SKIP_BROWSER=1: browser tests skipped")
	}
	for _, name := range browserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no Chromium for the browser tests: none of %s is on PATH. Install it with `apt-get install chromium` (`make test` does), or set HITCOUNTER_SKIP_BROWSER=1 to skip these tests",
		strings.Join(browserNames, ", "))
	return ""
}

// browserTab is the one tab of a browser of the test's own.
type browserTab struct {
	t      *testing.T
	ctx    context.Context // chromedp context of the tab; no deadline
	events *browserEvents  // what the tab has reported since it opened
	hit    string          // the action of the page's +1 form
}

// startBrowser starts a headless Chromium for t and returns its tab, with
// a recorder of what the tab reports already listening. The browser stops
// when t ends.
func startBrowser(t *testing.T, path string) *browserTab {
	t.Helper()
	userData := t.TempDir() // removed after the browser has stopped (cleanups run last-in first-out)
	out := &testkit.Buffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(userData),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Only loopback is reachable: keep Chromium from calling home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.WindowSize(1280, 800),
		// Headless Chromium says so in its User-Agent, and crawlers' views
		// count apart: be the browser people use.
		chromedp.UserAgent(browserUA),
		chromedp.CombinedOutput(out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits until the browser process has exited
		if t.Failed() && out.Len() > 0 {
			t.Logf("browser output:\n%s", out.String())
		}
	})

	// The first Do starts the browser. Its context must have no deadline,
	// which would stop the browser when it passes: bound it from outside.
	start := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v\n%s", path, err, out.String())
		}
	case <-timer.C:
		cancelTab()
		t.Fatalf("start %s: no browser after 30s\n%s", path, out.String())
	}
	t.Logf("started %s in %s", path, time.Since(start).Round(time.Millisecond))

	ev := &browserEvents{}
	if err := chromedp.Listen(ctx, ev.record); err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	return &browserTab{t: t, ctx: ctx, events: ev, hit: "/hit"}
}

// browserEvents records what a tab reports: errors and warnings of every
// kind, and the URL of every request.
type browserEvents struct {
	mu       sync.Mutex
	problems []string
	requests []string
}

// record runs on the tab's reader goroutine: it must be quick and must not
// call the browser.
func (e *browserEvents) record(ev any) {
	var problem, request string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		problem = "uncaught exception: " + cdpExceptionText(ev.ExceptionDetails)
	case *runtime.EventConsoleAPICalled:
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			var args []string
			for _, a := range ev.Args {
				args = append(args, cdpRemoteText(a))
			}
			problem = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *cdplog.EventEntryAdded:
		// Errors and warnings of the browser itself: CSP violations,
		// failed loads, deprecations.
		if en := ev.Entry; en != nil && (en.Level == cdplog.EntryLevelError || en.Level == cdplog.EntryLevelWarning) {
			problem = fmt.Sprintf("log %s (%s): %s", en.Level, en.Source, en.Text)
			if en.URL != "" {
				problem += " [" + en.URL + "]"
			}
		}
	case *network.EventRequestWillBeSent:
		if ev.Request != nil {
			request = ev.Request.URL
		}
	}
	if problem == "" && request == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if problem != "" {
		e.problems = append(e.problems, problem)
	}
	if request != "" {
		e.requests = append(e.requests, request)
	}
}

func (e *browserEvents) snapshot() (problems, requests []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.problems...), append([]string(nil), e.requests...)
}

func cdpExceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if d.Exception != nil {
		s += " " + cdpRemoteText(d.Exception)
	}
	return fmt.Sprintf("%s at %s:%d:%d", s, d.URL, d.LineNumber, d.ColumnNumber)
}

func cdpRemoteText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return ""
	case o.Description != "":
		return o.Description
	case len(o.Value) > 0:
		return string(o.Value)
	}
	return string(o.Type)
}

func browserSameOrigin(rawURL, origin string) bool {
	return rawURL == origin || strings.HasPrefix(rawURL, origin+"/")
}

// --- page actions and checks ---

// load navigates to pageURL, waits for the load event and fails the test on
// anything but 200.
func (b *browserTab) load(pageURL string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWaitTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(pageURL))
	if err != nil {
		b.t.Fatalf("load %s: %v", pageURL, err)
	}
	if resp == nil || resp.Status != http.StatusOK {
		status := int64(-1)
		if resp != nil {
			status = resp.Status
		}
		b.t.Fatalf("load %s: status %d, want 200", pageURL, status)
	}
}

// clickPlusOne clicks the +1 button.
func (b *browserTab) clickPlusOne() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWaitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form[action="`+b.hit+`"] button`))); err != nil {
		b.t.Fatalf("click +1: %v", err)
	}
}

// browserEval evaluates a JavaScript expression in the tab through DevTools
// (not as a page script: the CSP does not apply, and it works with
// JavaScript off).
func browserEval[T any](b *browserTab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWaitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

const (
	// browserCountJS is the text of #count, or "" when there is none.
	browserCountJS = `(document.getElementById('count') || {}).textContent || ''`
	// browserCounterJS is the text of #counter, or "" when there is none.
	browserCounterJS = `(document.getElementById('counter') || {}).textContent || ''`
)

var browserDigits = regexp.MustCompile(`^[0-9]+$`)

// readCount reads #count now and fails the test unless it is a number.
func (b *browserTab) readCount() int64 {
	b.t.Helper()
	s := browserEval[string](b, browserCountJS)
	if !browserDigits.MatchString(s) {
		b.t.Fatalf("#count reads %q, want a number (counter: %q)", s, b.counterText(b.ctx))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.t.Fatalf("#count reads %q: %v", s, err)
	}
	return n
}

// counterText is the text of #counter with white space collapsed, or why it
// could not be read.
func (b *browserTab) counterText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, browserWaitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](browserCounterJS))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.Join(strings.Fields(s), " ")
}

// waitCount waits until #count reads want and the whole counter says so.
func (b *browserTab) waitCount(want int64, timeout time.Duration) {
	b.t.Helper()
	times := "times"
	if want == 1 {
		times = "time"
	}
	wantText := fmt.Sprintf("This page has been seen %d %s", want, times)
	b.waitFor(timeout, fmt.Sprintf("#count to read %d", want), func(ctx context.Context) (bool, string) {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](browserCountJS))
		if err != nil {
			return false, err.Error()
		}
		text := b.counterText(ctx)
		if s != strconv.FormatInt(want, 10) {
			return false, fmt.Sprintf("#count reads %q (counter: %q)", s, text)
		}
		return text == wantText, fmt.Sprintf("counter reads %q, want %q", text, wantText)
	})
}

// waitHTMXReady waits until htmx has loaded and taken over the +1 form, so
// that a click goes through htmx and not as a plain form post.
func (b *browserTab) waitHTMXReady() {
	b.t.Helper()
	b.waitFor(browserWaitTimeout, "htmx to load and process the form", func(ctx context.Context) (bool, string) {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`typeof htmx + ' ' + (document.querySelector('form[action="`+b.hit+`"]')?.getAttribute('data-htmx-powered') ?? 'unprocessed')`))
		if err != nil {
			return false, err.Error()
		}
		return state == "object true", "typeof htmx, the form's data-htmx-powered: " + state
	})
}

// setMarker leaves a property on window and on #counter: a reload loses the
// first, any swap of the counter the second.
func (b *browserTab) setMarker() {
	b.t.Helper()
	browserEval[chromedp.Void](b, `window.__hitcounterMarker = 1; document.getElementById('counter').__hitcounterMarker = 1`)
}

// checkNotReloaded fails the test if the page was loaded again since
// setMarker.
func (b *browserTab) checkNotReloaded(after string) {
	b.t.Helper()
	if !browserEval[bool](b, `window.__hitcounterMarker === 1`) {
		b.t.Errorf("the page was reloaded by %s; want an update in place", after)
	}
}

// waitFor calls cond every 25ms until it reports done, and fails the test
// if timeout passes first. cond says what it saw, for the failure message;
// its context ends at the deadline.
func (b *browserTab) waitFor(timeout time.Duration, what string, cond func(ctx context.Context) (done bool, seen string)) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		done, seen := cond(ctx)
		if done {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("waited %s for %s; last saw: %s", timeout, what, seen)
		case <-tick.C:
		}
	}
}

// logProblems logs what the browser complained about, in the tests that do
// not assert on it (TestBrowserConsoleClean does).
func (b *browserTab) logProblems() {
	b.t.Helper()
	problems, _ := b.events.snapshot()
	for _, p := range problems {
		b.t.Logf("browser reported: %s", p)
	}
}

// --- screenshots ---

// screenshots saves the page as a desktop and a phone show it, when
// HITCOUNTER_SCREENSHOT names a file.
func (b *browserTab) screenshots() {
	b.t.Helper()
	if os.Getenv("HITCOUNTER_SCREENSHOT") == "" {
		return
	}
	b.saveScreenshot("")
	ctx, cancel := context.WithTimeout(b.ctx, browserWaitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844,
		chromedp.EmulateScale(2), chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
		b.t.Fatalf("emulate a phone: %v", err)
	}
	b.saveScreenshot("-phone")
	if err := chromedp.Do(ctx, chromedp.ResetViewport()); err != nil {
		b.t.Fatalf("reset the viewport: %v", err)
	}
}

// saveScreenshot saves a full-page PNG at $HITCOUNTER_SCREENSHOT, with
// suffix added before the extension; it does nothing when the variable is
// unset.
func (b *browserTab) saveScreenshot(suffix string) {
	b.t.Helper()
	base := os.Getenv("HITCOUNTER_SCREENSHOT")
	if base == "" {
		return
	}
	ext := filepath.Ext(base)
	path := strings.TrimSuffix(base, ext) + suffix + ext
	ctx, cancel := context.WithTimeout(b.ctx, browserWaitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot saved to %s", path)
}
