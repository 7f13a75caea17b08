package web_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
	"github.com/hitcounter/hitcounter/web"
)

// app is the whole HTTP stack on a real database of its own.
type app struct {
	srv   *httptest.Server
	dbURL string
	store *db.Store
	logs  *testkit.Buffer
}

func newApp(t *testing.T, cfg web.Config) *app {
	t.Helper()
	return newAppOn(t, cfg, testdb.NewMigrated(t))
}

// newAppOn serves the app against storeURL; dbURL stays the database the
// test reads directly.
func newAppOn(t *testing.T, cfg web.Config, storeURL string) *app {
	t.Helper()
	return newAppStore(t, cfg, storeURL, func(*db.Config) {})
}

// newAppStore is newAppOn with the store's settings changed by set.
func newAppStore(t *testing.T, cfg web.Config, storeURL string, set func(*db.Config)) *app {
	t.Helper()
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	storeCfg := db.DefaultConfig()
	storeCfg.Retry.InitialDelay = 5 * time.Millisecond
	storeCfg.Retry.MaxDelay = 20 * time.Millisecond
	set(&storeCfg)
	store, err := db.Open(storeURL, storeCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h, err := web.NewServer(cfg, store, assets.FS, assets.HTMX, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	return &app{srv: srv, dbURL: storeURL, store: store, logs: logs}
}

// do sends a request and returns the response with its body read.
func (a *app) do(t *testing.T, method, path string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	h := map[string]string{"User-Agent": browserUA}
	maps.Copy(h, header)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return testkit.Do(t, client, method, a.srv.URL+path, body, h)
}

var htmx = map[string]string{"HX-Request": "true"}

// browserUA is a desktop browser's User-Agent: requests with Go's own are
// crawlers' to the bot detection, and count apart from views.
const browserUA = testkit.BrowserUA

func parse(t *testing.T, body string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	return doc
}

// countIn reads the number in #count.
func countIn(t *testing.T, body string) int64 {
	t.Helper()
	sel := parse(t, body).Find("#count")
	if sel.Length() != 1 {
		t.Fatalf("want exactly one #count, got %d in:\n%s", sel.Length(), body)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(sel.Text()), 10, 64)
	if err != nil {
		t.Fatalf("#count is %q, not a number", sel.Text())
	}
	return n
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want)
	}
}

func TestPageCountsEachView(t *testing.T) {
	a := newApp(t, web.Config{})
	for want := int64(1); want <= 3; want++ {
		resp, body := a.do(t, "GET", "/", nil, nil)
		wantStatus(t, resp, 200)
		if got := countIn(t, body); got != want {
			t.Fatalf("view %d shows %d", want, got)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 3 {
		t.Fatalf("database has %d hits after 3 views, want 3", got)
	}
}

func TestPageMarkup(t *testing.T) {
	a := newApp(t, web.Config{PollInterval: 1500 * time.Millisecond})
	resp, body := a.do(t, "GET", "/", nil, nil)
	wantStatus(t, resp, 200)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	doc := parse(t, body)
	if got := strings.Join(strings.Fields(doc.Find("#counter").Text()), " "); got != "This page has been seen 1 time" {
		t.Errorf("counter text %q", got)
	}
	checks := []struct{ sel, attr, want string }{
		{"#counter", "hx-get", "/count"},
		{"#counter", "hx-trigger", "every 1500ms"},
		{"#counter", "hx-swap", "outerHTML"},
		{"form", "method", "post"},
		{"form", "action", "/hit"},
		{"form", "hx-post", "/hit"},
		{"form", "hx-target", "#counter"},
		{"form", "hx-swap", "outerHTML"},
		{"form", "hx-sync", "#counter:replace"},
		{"script", "src", "/static/" + assets.HTMX},
		{`link[rel="stylesheet"]`, "href", "/static/style.css"},
		{`link[rel="icon"]`, "href", "/static/favicon.svg"},
	}
	for _, c := range checks {
		got, ok := doc.Find(c.sel).Attr(c.attr)
		if !ok || got != c.want {
			t.Errorf("%s[%s] = %q, want %q", c.sel, c.attr, got, c.want)
		}
	}
	if doc.Find("form button[type=submit]").Text() != "+1" {
		t.Errorf("no +1 submit button in the form")
	}
	// The CSP forbids inline code: the page must not carry any.
	if n := doc.Find("script:not([src]), style, [style]").Length(); n != 0 {
		t.Errorf("%d inline scripts or styles in the page", n)
	}
}

func TestCountPollReadsWithoutCounting(t *testing.T) {
	a := newApp(t, web.Config{})
	a.do(t, "GET", "/", nil, nil) // 1
	for range 3 {
		resp, body := a.do(t, "GET", "/count", nil, htmx)
		wantStatus(t, resp, 200)
		if got := countIn(t, body); got != 1 {
			t.Fatalf("poll shows %d, want 1", got)
		}
		if id, _ := parse(t, body).Find("body > p").Attr("id"); id != "counter" {
			t.Fatalf("poll answer is not the #counter fragment:\n%s", body)
		}
		if strings.Contains(body, "<html") {
			t.Fatalf("poll answered a whole page, want the fragment")
		}
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 1 {
		t.Fatalf("polls changed the count to %d", got)
	}
}

func TestHitWithHTMXReturnsFragment(t *testing.T) {
	a := newApp(t, web.Config{})
	for want := int64(1); want <= 2; want++ {
		resp, body := a.do(t, "POST", "/hit", nil, htmx)
		wantStatus(t, resp, 200)
		if got := countIn(t, body); got != want {
			t.Fatalf("hit %d answered %d", want, got)
		}
		if strings.Contains(body, "<html") {
			t.Fatalf("htmx hit answered a whole page, want the fragment")
		}
		if !strings.Contains(resp.Header.Get("Vary"), "HX-Request") {
			t.Errorf("Vary %q lacks HX-Request", resp.Header.Get("Vary"))
		}
	}
}

// Without JavaScript the form posts, is redirected, and the page it lands
// on shows the click's hit without counting the redirect as another view.
func TestHitWithoutJavaScriptRedirects(t *testing.T) {
	a := newApp(t, web.Config{})
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	resp, _ := a.do(t, "POST", "/hit", strings.NewReader(""), form)
	wantStatus(t, resp, http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	if u, err := url.Parse(loc); err != nil || u.Path != "/" {
		t.Fatalf("redirect to %q, want the page", loc)
	}
	resp, body := a.do(t, "GET", loc, nil, nil)
	wantStatus(t, resp, 200)
	if got := countIn(t, body); got != 1 {
		t.Fatalf("page after the click shows %d, want 1", got)
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 1 {
		t.Fatalf("database has %d hits after one click, want 1", got)
	}
}

func TestHeadReadsWithoutCounting(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, body := a.do(t, "HEAD", "/", nil, nil)
	wantStatus(t, resp, 200)
	if body != "" {
		t.Errorf("HEAD answered a body")
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 0 {
		t.Fatalf("HEAD counted: %d hits", got)
	}
}

// 50 clients × 200 clicks through HTTP: every click counted exactly once
// and every client sees its own value.
func TestConcurrentHitsAreExact(t *testing.T) {
	const clients, perClient = 50, 200
	a := newApp(t, web.Config{})
	start := testdb.Hits(t, a.dbURL, "main")
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	values := make(chan int64, clients*perClient)
	errs := make(chan error, clients)
	began := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range perClient {
				req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/hit", nil)
				req.Header.Set("HX-Request", "true")
				req.Header.Set("User-Agent", browserUA)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- &statusErr{resp.StatusCode, string(body), err}
					return
				}
				doc, _ := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
				n, err := strconv.ParseInt(strings.TrimSpace(doc.Find("#count").Text()), 10, 64)
				if err != nil {
					errs <- err
					return
				}
				values <- n
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(values)
	close(errs)
	for err := range errs {
		t.Fatalf("a client failed: %v", err)
	}
	seen := make(map[int64]bool, clients*perClient)
	for n := range values {
		if seen[n] {
			t.Fatalf("value %d answered twice", n)
		}
		if n <= start || n > start+clients*perClient {
			t.Fatalf("value %d outside (%d, %d]", n, start, start+clients*perClient)
		}
		seen[n] = true
	}
	if len(seen) != clients*perClient {
		t.Fatalf("%d distinct values, want %d", len(seen), clients*perClient)
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != start+clients*perClient {
		t.Fatalf("database has %d hits, want %d", got, start+clients*perClient)
	}
	t.Logf("%d increments by %d clients in %v: %.0f increments/s", clients*perClient, clients, elapsed.Round(time.Millisecond),
		float64(clients*perClient)/elapsed.Seconds())
}

type statusErr struct {
	status int
	body   string
	err    error
}

func (e *statusErr) Error() string {
	return "status " + strconv.Itoa(e.status) + ": " + e.body
}

// Bad requests get their status and a clear message, and change nothing.
func TestBadRequestsChangeNothing(t *testing.T) {
	a := newApp(t, web.Config{MaxBodyBytes: 1024})
	big := strings.Repeat("x=1&", 1000)
	tests := []struct {
		name     string
		method   string
		path     string
		body     func() io.Reader
		header   map[string]string
		status   int
		message  string
		wantAllw string
	}{
		{name: "cross-site POST by Sec-Fetch-Site", method: "POST", path: "/hit",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "HX-Request": "true"},
			status: 403, message: "Cross-site requests are refused."},
		{name: "cross-origin POST by Origin", method: "POST", path: "/hit",
			header: map[string]string{"Origin": "https://evil.example"},
			status: 403, message: "Cross-site requests are refused."},
		{name: "body over the limit", method: "POST", path: "/hit",
			body:   func() io.Reader { return strings.NewReader(big) },
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			status: 413, message: "The request body is too large."},
		{name: "body over the limit, length unknown", method: "POST", path: "/hit",
			body:   func() io.Reader { return io.MultiReader(strings.NewReader(big)) }, // hides the length: chunked
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			status: 413, message: "The request body is too large."},
		{name: "malformed form", method: "POST", path: "/hit",
			body:   func() io.Reader { return strings.NewReader("a=%zz") },
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			status: 400, message: "The request body is not a valid form."},
		{name: "wrong method on the page", method: "PUT", path: "/",
			status: 405, message: "This address does not accept PUT requests.", wantAllw: "GET, HEAD"},
		{name: "GET on the button's address", method: "GET", path: "/hit",
			status: 405, message: "This address does not accept GET requests.", wantAllw: "POST"},
		{name: "unknown page", method: "GET", path: "/nope",
			status: 404, message: "There is no page at this address."},
		{name: "unknown static file", method: "GET", path: "/static/nope.js",
			status: 404, message: "There is no file at this address."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != nil {
				body = tt.body()
			}
			resp, text := a.do(t, tt.method, tt.path, body, tt.header)
			wantStatus(t, resp, tt.status)
			if got := strings.TrimSpace(parse(t, text).Find(".problem").Text()); got != tt.message {
				t.Errorf("message %q, want %q", got, tt.message)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllw {
				t.Errorf("Allow %q, want %q", got, tt.wantAllw)
			}
		})
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 0 {
		t.Fatalf("bad requests changed the count to %d", got)
	}
}

// htmx swaps error answers into the counter, so they must be the counter
// fragment (still polling), not a whole page.
func TestErrorsForHTMXAreCounterFragments(t *testing.T) {
	a := newApp(t, web.Config{MaxBodyBytes: 16})
	resp, body := a.do(t, "POST", "/hit", strings.NewReader(strings.Repeat("x", 100)), htmx)
	wantStatus(t, resp, 413)
	doc := parse(t, body)
	if strings.Contains(body, "<html") || doc.Find("#counter[hx-get='/count'][hx-trigger]").Length() != 1 {
		t.Fatalf("413 for htmx is not the polling counter fragment:\n%s", body)
	}
	if got := doc.Find("#counter .problem").Text(); got != "The request body is too large." {
		t.Fatalf("message %q", got)
	}
}

func TestSecurityHeadersEverywhere(t *testing.T) {
	a := newApp(t, web.Config{})
	for _, path := range []string{"/", "/count", "/nope", "/static/" + assets.HTMX, "/static/style.css", "/healthz"} {
		resp, _ := a.do(t, "GET", path, nil, nil)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: CSP %q allows unsafe code", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("X-Frame-Options") != "DENY" || h.Get("Cross-Origin-Opener-Policy") != "same-origin" {
			t.Errorf("%s: security headers missing or wrong: %v", path, h)
		}
	}
}

func TestStaticFilesCacheHeaders(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, body := a.do(t, "GET", "/static/"+assets.HTMX, nil, nil)
	wantStatus(t, resp, 200)
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("versioned file Cache-Control %q", cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("htmx Content-Type %q", ct)
	}
	want, _ := assets.FS.ReadFile(assets.HTMX)
	if body != string(want) {
		t.Errorf("htmx body differs from the embedded file")
	}

	resp, _ = a.do(t, "GET", "/static/style.css", nil, nil)
	wantStatus(t, resp, 200)
	etag := resp.Header.Get("ETag")
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" || etag == "" {
		t.Errorf("unversioned file: Cache-Control %q, ETag %q; want no-cache with an ETag", cc, etag)
	}
	resp, body = a.do(t, "GET", "/static/style.css", nil, map[string]string{"If-None-Match": etag})
	wantStatus(t, resp, http.StatusNotModified)
	if body != "" {
		t.Errorf("304 with a body")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, body := a.do(t, "GET", "/healthz", nil, nil)
	wantStatus(t, resp, 200)
	if body != "ok\n" {
		t.Errorf("healthz body %q", body)
	}
	resp, body = a.do(t, "GET", "/readyz", nil, nil)
	wantStatus(t, resp, 200)
	if body != "ready\n" {
		t.Errorf("readyz body %q", body)
	}

	// A database without the schema: alive, not ready.
	unmigrated := newAppOn(t, web.Config{}, testdb.New(t))
	resp, _ = unmigrated.do(t, "GET", "/healthz", nil, nil)
	wantStatus(t, resp, 200)
	resp, body = unmigrated.do(t, "GET", "/readyz", nil, nil)
	wantStatus(t, resp, 503)
	if !strings.Contains(body, "not ready") {
		t.Errorf("readyz body %q", body)
	}
}

func TestRequestLogLine(t *testing.T) {
	a := newApp(t, web.Config{})
	a.do(t, "GET", "/nope", nil, nil)
	logs := a.logs.String()
	for _, want := range []string{"msg=request", "method=GET", "path=/nope", "status=404", "request_id=", "client_ip=127.0.0.1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %q:\n%s", want, logs)
		}
	}
}

// htmx waits a little longer than the server's request deadline, so that
// the server's own answer at its deadline (503, "unavailable") reaches
// the page before htmx gives up on the request.
func TestHTMXTimeoutFollowsRequestTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{1500 * time.Millisecond, 7 * time.Second} {
		a := newAppWith(t, web.Config{RequestTimeout: timeout})
		for _, path := range []string{"/", "/c/blog", "/c/blog/embed", "/nope"} {
			_, body := a.do(t, "GET", path, nil, nil)
			config := parse(t, body).Find(`meta[name="htmx-config"]`).AttrOr("content", "")
			var htmxTimeout time.Duration
			for f := range strings.FieldsSeq(config) {
				if v, ok := strings.CutPrefix(f, "defaultTimeout:"); ok {
					ms, _ := strconv.Atoi(v)
					htmxTimeout = time.Duration(ms) * time.Millisecond
				}
			}
			if htmxTimeout <= timeout || htmxTimeout > timeout+2*time.Second {
				t.Errorf("request timeout %v: GET %s has htmx-config %q, want a defaultTimeout a little over it", timeout, path, config)
			}
		}
	}
}

// Polls, probes and static files log at debug unless they fail: every
// open page polls every 2 s, which at info would drown the log. A named
// counter's poll (its page's or an embed's) is one of them.
func TestQuietRequestsLogAtDebug(t *testing.T) {
	// ObserveRequest hears of a request once its log line is written.
	logged := make(chan struct{}, 16)
	a := newAppWith(t, web.Config{ObserveRequest: func(string, string, int, time.Duration) { logged <- struct{}{} }})
	for _, tt := range []struct {
		path   string
		status int
		level  string
	}{
		{"/count", 200, "DEBUG"},
		{"/c/blog/count", 200, "DEBUG"},
		{"/c/blog/count?page", 200, "DEBUG"},
		{"/healthz", 200, "DEBUG"},
		{"/readyz", 200, "DEBUG"},
		{"/static/favicon.svg", 200, "DEBUG"},
		{"/c/nope/count", 404, "INFO"}, // a failing poll is not quiet
		{"/c/blog", 200, "INFO"},       // a view is not a poll
		{"/c/blog/badge.svg?count=0", 200, "INFO"},
	} {
		resp, _ := a.do(t, "GET", tt.path, nil, htmx)
		wantStatus(t, resp, tt.status)
		select {
		case <-logged:
		case <-time.After(10 * time.Second):
			t.Fatalf("GET %s: no request line within 10s", tt.path)
		}
		id := "request_id=" + resp.Header.Get("X-Request-Id")
		var line string
		for l := range strings.SplitSeq(a.logs.String(), "\n") {
			if strings.Contains(l, "msg=request ") && strings.Contains(l, id) {
				line = l
			}
		}
		if !strings.Contains(line, "level="+tt.level+" ") {
			t.Errorf("GET %s (%d): request logged at %q, want level %s", tt.path, tt.status, line, tt.level)
		}
	}
}

// With the database down, the page and the fragments answer 503 with a
// clear message in place of the count, keep polling, and show the count
// again once the database is back. Nothing is counted meanwhile.
func TestDatabaseDownAndBack(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	a := newAppOn(t, web.Config{}, proxied)
	testdb.Exec(t, dbURL, `insert into counters (name) values ('blog')`)
	a.do(t, "GET", "/", nil, nil) // 1

	proxy.SetDown(true)
	// Counts come from memory until the listener notices its connection is
	// gone (it is cut with the rest); from then on they come from the
	// database, which is down.
	waitNotListening(t, a.store)
	for _, r := range []struct {
		method, path string
		header       map[string]string
	}{
		{"GET", "/", nil},
		{"GET", "/count", htmx},
		{"POST", "/hit", htmx},
		{"GET", "/c/blog", nil},
		{"GET", "/c/blog/count", htmx},
		{"POST", "/c/blog/hit", htmx},
		{"GET", "/c/blog/count?page", htmx},
		{"GET", "/readyz", nil},
	} {
		poll := "/count"
		switch {
		case r.path == "/c/blog" || strings.HasSuffix(r.path, "?page"):
			poll = "/c/blog/count?page" // the counter's own page
		case strings.HasPrefix(r.path, "/c/blog"):
			poll = "/c/blog/count"
		}
		resp, body := a.do(t, r.method, r.path, nil, r.header)
		wantStatus(t, resp, http.StatusServiceUnavailable)
		if r.path == "/readyz" {
			continue
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
		doc := parse(t, body)
		if got := doc.Find("#counter .problem").Text(); got != "Counter unavailable, retrying…" {
			t.Errorf("%s %s: message %q", r.method, r.path, got)
		}
		if r.path == "/c/blog" && doc.Find("#chart-unavailable").Length() != 1 {
			t.Errorf("%s %s: no word that the history is unavailable:\n%s", r.method, r.path, body)
		}
		if doc.Find("#counter[hx-get='"+poll+"'][hx-trigger]").Length() != 1 {
			t.Errorf("%s %s: the counter no longer polls:\n%s", r.method, r.path, body)
		}
		if doc.Find("#count").Length() != 0 {
			t.Errorf("%s %s: shows a count while the database is down", r.method, r.path)
		}
	}
	if !strings.Contains(a.logs.String(), "db transaction failed") {
		t.Errorf("the outage was not logged")
	}

	proxy.SetDown(false)
	resp, body := a.do(t, "GET", "/count", nil, htmx)
	wantStatus(t, resp, 200)
	if got := countIn(t, body); got != 1 {
		t.Fatalf("after recovery the count is %d, want 1 (nothing counted while down)", got)
	}
	resp, _ = a.do(t, "GET", "/readyz", nil, nil)
	wantStatus(t, resp, 200)
}

// A database that accepts connections but never answers must not hang the
// request: the deadline cuts it and the user gets the 503 page.
func TestRequestDeadlineAnswersWhenDatabaseHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	conns := make(chan net.Conn, 16)
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c // accepted, never answered
		}
	})
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	a := newAppOn(t, web.Config{RequestTimeout: 300 * time.Millisecond},
		"postgres://u:p@"+ln.Addr().String()+"/db?sslmode=disable")
	resp, body := a.do(t, "GET", "/", nil, nil) // the client gives up after 10s
	wantStatus(t, resp, http.StatusServiceUnavailable)
	if got := parse(t, body).Find("#counter .problem").Text(); got != "Counter unavailable, retrying…" {
		t.Errorf("message %q", got)
	}
}

// A client that leaves while the database is slow is logged as gone, at
// debug, and its abandoned query is not a database failure.
func TestClientGoneIsNotADatabaseFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	conns := make(chan net.Conn, 16)
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c // accepted, never answered: a database that hangs
		}
	})
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	observed := make(chan int, 16)
	a := newAppOn(t, web.Config{RequestTimeout: 10 * time.Second,
		ObserveRequest: func(_, _ string, status int, _ time.Duration) { observed <- status }},
		"postgres://u:p@"+ln.Addr().String()+"/db?sslmode=disable")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/count", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%d) although the database hangs", resp.StatusCode)
	}
	testkit.Eventually(t, 10*time.Second, "a request line with client_gone=true", func() (bool, string) {
		return strings.Contains(a.logs.String(), "client_gone=true"), a.logs.String()
	})
	for _, l := range strings.Split(a.logs.String(), "\n") {
		if strings.Contains(l, "client_gone=true") && !strings.Contains(l, "level=DEBUG") {
			t.Errorf("the gone client's request is logged above debug: %s", l)
		}
		if strings.Contains(l, "db transaction failed") {
			t.Errorf("a gone client's query logged as a database failure: %s", l)
		}
	}
	if !strings.Contains(a.logs.String(), "db call abandoned: its caller is gone") {
		t.Errorf("the abandoned query is not logged as such:\n%s", a.logs.String())
	}
	// In the metrics it is a 499, as nginx counts it, not a 503.
	select {
	case status := <-observed:
		if status != 499 {
			t.Errorf("the gone client's request observed with status %d, want 499", status)
		}
	case <-time.After(10 * time.Second):
		t.Error("the gone client's request was never observed")
	}
}

// panickingStore stands in for a bug in a handler's path: it panics where the handlers reach for the data; the rest
// of web.Store comes from the nil interface it embeds, never called here.
type panickingStore struct{ web.Store }

func (panickingStore) Record(context.Context, string, db.Hit) (db.Counts, error) { panic("boom") }
func (panickingStore) Counts(context.Context, string) (db.Counts, error)         { panic("boom") }

// A panic becomes a 500 page and one logged stack trace; the server lives on.
func TestPanicRecovered(t *testing.T) {
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	h, err := web.NewServer(web.Config{}, panickingStore{}, assets.FS, assets.HTMX, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	a := &app{srv: srv, logs: logs}
	resp, body := a.do(t, "GET", "/", nil, nil)
	wantStatus(t, resp, 500)
	if got := parse(t, body).Find(".problem").Text(); got != "Something went wrong on our side. Please try again." {
		t.Errorf("message %q", got)
	}
	if strings.Contains(body, "boom") || strings.Contains(body, "goroutine") {
		t.Errorf("the 500 page shows internals:\n%s", body)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "panic: boom") || !strings.Contains(l, "web_test.go") {
		t.Errorf("the panic was not logged with its stack:\n%s", l)
	}
	resp, _ = a.do(t, "GET", "/healthz", nil, nil)
	wantStatus(t, resp, 200)
}

func waitNotListening(t *testing.T, store *db.Store) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the store's listener down after the database", func() (bool, string) {
		return !store.Stats().Listening, "listening"
	})
}

// An unchanged poll costs a 304 with no body; a changed count gets a new
// ETag. The comparison is weak, since nginx weakens ETags it compresses.
func TestPollRevalidatesWithETag(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, body := a.do(t, "GET", "/count", nil, htmx)
	wantStatus(t, resp, 200)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("poll: ETag %q, Cache-Control %q; want an ETag and no-cache", etag, resp.Header.Get("Cache-Control"))
	}
	n := countIn(t, body)

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag} {
		resp, body = a.do(t, "GET", "/count", nil, map[string]string{"HX-Request": "true", "If-None-Match": inm})
		wantStatus(t, resp, http.StatusNotModified)
		if body != "" || resp.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: 304 with body %q, ETag %q", inm, body, resp.Header.Get("ETag"))
		}
	}
	resp, _ = a.do(t, "GET", "/count", nil, map[string]string{"If-None-Match": `"something else"`})
	wantStatus(t, resp, 200)

	a.do(t, "POST", "/hit", nil, htmx)
	resp, body = a.do(t, "GET", "/count", nil, map[string]string{"HX-Request": "true", "If-None-Match": etag})
	wantStatus(t, resp, 200)
	if got := countIn(t, body); got != n+1 {
		t.Errorf("poll after a click: %d, want %d", got, n+1)
	}
	if resp.Header.Get("ETag") == etag {
		t.Errorf("the ETag did not change with the count")
	}
	// The page itself is never stored: each view counts.
	resp, _ = a.do(t, "GET", "/", nil, nil)
	if resp.Header.Get("ETag") != "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("page: ETag %q, Cache-Control %q; want none and no-store", resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
	}
}

// Two instances on one database: clicks on both are counted exactly, and a
// click on one shows in the other's poll answer within one poll interval,
// served from the other's memory.
func TestTwoInstancesStayExactAndFresh(t *testing.T) {
	const pollInterval = 500 * time.Millisecond
	dbURL := testdb.NewMigrated(t)
	a := newAppOn(t, web.Config{PollInterval: pollInterval}, dbURL)
	b := newAppOn(t, web.Config{PollInterval: pollInterval}, dbURL)
	for _, app := range []*app{a, b} {
		testkit.Eventually(t, 10*time.Second, "the listener up", func() (bool, string) {
			return app.store.Stats().Listening, "not listening"
		})
	}

	// 2 × 20 clients × 50 clicks, half on each instance.
	const clients, each = 20, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var values []int64
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for _, app := range []*app{a, b} {
		for range clients {
			wg.Go(func() {
				for range each {
					req, _ := http.NewRequest("POST", app.srv.URL+"/hit", nil)
					req.Header.Set("HX-Request", "true")
					req.Header.Set("User-Agent", browserUA)
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("click: %d %s", resp.StatusCode, body)
						return
					}
					n, err := strconv.ParseInt(strings.TrimSpace(parse(t, string(body)).Find("#count").Text()), 10, 64)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					values = append(values, n)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = 2 * clients * each
	seen := map[int64]bool{}
	for _, v := range values {
		if seen[v] || v < 1 || v > total {
			t.Fatalf("value %d repeated or outside [1, %d]", v, total)
		}
		seen[v] = true
	}
	if len(seen) != total || testdb.Hits(t, dbURL, "main") != total {
		t.Fatalf("%d distinct values, database %d; want %d", len(seen), testdb.Hits(t, dbURL, "main"), total)
	}

	// One click on a: b's next poll shows it, from memory.
	a.do(t, "POST", "/hit", nil, htmx)
	clicked := time.Now()
	reads := b.store.Stats().DatabaseReads
	for {
		_, body := b.do(t, "GET", "/count", nil, htmx)
		if countIn(t, body) == total+1 {
			break
		}
		if time.Since(clicked) > pollInterval {
			t.Fatalf("instance b still shows %d one poll interval (%s) after the click on a", countIn(t, body), pollInterval)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("a click on instance a showed on instance b after %s (poll interval %s)", time.Since(clicked).Round(time.Microsecond), pollInterval)
	if got := b.store.Stats().DatabaseReads - reads; got != 0 {
		t.Errorf("instance b read the database %d times, want 0 (memory)", got)
	}
}

// Request ids are the server's own: a client's X-Request-Id is logged
// apart, never as the id that correlates the logs.
func TestRequestIDIsTheServers(t *testing.T) {
	a := newApp(t, web.Config{})
	resp, _ := a.do(t, "GET", "/healthz", nil, map[string]string{"X-Request-Id": "forged-id"})
	id := resp.Header.Get("X-Request-Id")
	if id == "" || id == "forged-id" {
		t.Fatalf("X-Request-Id answered %q, want one of the server's own", id)
	}
	resp2, _ := a.do(t, "GET", "/healthz", nil, nil)
	if id2 := resp2.Header.Get("X-Request-Id"); id2 == "" || id2 == id {
		t.Errorf("two requests, ids %q and %q: want two different ids", id, id2)
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "request_id="+id) || !strings.Contains(logs, "client_request_id=forged-id") {
		t.Errorf("the log has not request_id=%s and client_request_id=forged-id:\n%s", id, logs)
	}
	if strings.Contains(logs, "request_id=forged-id ") {
		t.Errorf("the client's id was used as the request id:\n%s", logs)
	}
}

// Requests no route takes with any method (CONNECT host:port, PRI *) get
// 404, not a 405 with an empty Allow.
func TestNoMethodNoAllow(t *testing.T) {
	a := newApp(t, web.Config{})
	for _, raw := range []string{
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"DELETE /nope HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(a.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Errorf("%q: 405 with an empty Allow", strings.SplitN(raw, "\r\n", 2)[0])
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%q: %d, want 404", strings.SplitN(raw, "\r\n", 2)[0], resp.StatusCode)
		}
	}
	resp, _ := a.do(t, "DELETE", "/hit", nil, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("DELETE /hit: %d, Allow %q; want 405 with Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// A body that comes too slowly is a timeout (408), logged as such, and
// counts nothing.
func TestSlowBodyIs408(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	store, err := db.Open(dbURL, db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h, err := web.NewServer(web.Config{}, store, assets.FS, assets.HTMX, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write([]byte("POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\na"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "The request body came too slowly.") {
		t.Errorf("a slow body: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "status=408") || !strings.Contains(logs.String(), "timeout") {
		t.Errorf("the log does not say 408 and why:\n%s", logs.String())
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 0 {
		t.Errorf("%d hits counted", got)
	}
}
