package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
	"github.com/hitcounter/hitcounter/web"
)

// newAppWith serves the app with one named counter, "blog".
func newAppWith(t *testing.T, cfg web.Config) *app {
	t.Helper()
	a := newApp(t, cfg)
	testdb.Exec(t, a.dbURL, `insert into counters (name) values ('blog')`)
	return a
}

// apiCounter reads GET /api/counters/{name}.
func (a *app) apiCounter(t *testing.T, name string) map[string]any {
	t.Helper()
	resp, body := a.do(t, "GET", "/api/counters/"+name, nil, nil)
	wantStatus(t, resp, 200)
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("JSON: %v\n%s", err, body)
	}
	return v
}

func figure(t *testing.T, body, id string) int64 {
	t.Helper()
	sel := parse(t, body).Find("#" + id)
	n, err := strconv.ParseInt(strings.TrimSpace(sel.Text()), 10, 64)
	if sel.Length() != 1 || err != nil {
		t.Fatalf("#%s: %d elements, %q", id, sel.Length(), sel.Text())
	}
	return n
}

// A named counter's page counts a view and shows the total, today's
// views and visitors, a chart of 30 labelled days and the snippets; its
// fragment polls its own address.
func TestNamedCounterPage(t *testing.T) {
	a := newAppWith(t, web.Config{})
	a.do(t, "GET", "/c/blog", nil, nil)
	resp, body := a.do(t, "GET", "/c/blog", nil, nil)
	wantStatus(t, resp, 200)
	if got := [3]int64{figure(t, body, "count"), figure(t, body, "today"), figure(t, body, "visitors")}; got != [3]int64{2, 2, 1} {
		t.Errorf("total, today, visitors: got %v, want [2 2 1] (one visitor viewed twice)", got)
	}
	doc := parse(t, body)
	if got := doc.Find("#counter").AttrOr("hx-get", ""); got != "/c/blog/count?page" {
		t.Errorf("the fragment polls %q", got)
	}
	if got := doc.Find(`form[action="/c/blog/hit?page"][hx-post="/c/blog/hit?page"]`).Length(); got != 1 {
		t.Errorf("%d +1 forms posting to /c/blog/hit?page, want 1", got)
	}
	days := doc.Find("#chart g.day")
	if days.Length() != 30 {
		t.Fatalf("the chart has %d days, want 30", days.Length())
	}
	labelled := 0
	days.Each(func(_ int, g *goquery.Selection) {
		if g.AttrOr("role", "") == "img" && g.AttrOr("aria-label", "") != "" && g.Find("title").Text() == g.AttrOr("aria-label", "") {
			labelled++
		}
	})
	if labelled != 30 {
		t.Errorf("%d of 30 bars have a role, a label and a title", labelled)
	}
	today := days.Last()
	if got := today.AttrOr("data-date", ""); got != time.Now().UTC().Format(time.DateOnly) {
		t.Errorf("the last bar is %q, want today", got)
	}
	if got := today.AttrOr("aria-label", ""); !strings.HasSuffix(got, ": 2 views, 1 visitor") {
		t.Errorf("today's bar says %q", got)
	}
	for id, want := range map[string]string{
		"snippet-badge":  a.srv.URL + "/c/blog/badge.svg",
		"snippet-iframe": `<iframe src="` + a.srv.URL + `/c/blog/embed?button"`,
		"snippet-json":   a.srv.URL + "/api/counters/blog",
	} {
		if got := doc.Find("#" + id).Text(); !strings.Contains(got, want) {
			t.Errorf("#%s is %q, want it to contain %q", id, got, want)
		}
	}
	resp, body = a.do(t, "GET", "/c/blog/count", nil, htmx)
	wantStatus(t, resp, 200)
	if figure(t, body, "count") != 2 || figure(t, body, "visitors") != 1 {
		t.Errorf("the poll changed the count or lost the visitors:\n%s", body)
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 2 {
		t.Errorf("blog: %d hits, want 2", got)
	}
	if got := testdb.Hits(t, a.dbURL, "main"); got != 0 {
		t.Errorf("main: %d hits, want 0: another counter's views went to it", got)
	}
}

// The +1 of a named counter: htmx gets its fragment, a plain form post is
// redirected to its page (or its embed) without counting again.
func TestNamedCounterHit(t *testing.T) {
	a := newAppWith(t, web.Config{})
	resp, body := a.do(t, "POST", "/c/blog/hit", nil, htmx)
	wantStatus(t, resp, 200)
	if figure(t, body, "count") != 1 || figure(t, body, "today") != 1 {
		t.Errorf("fragment after a click:\n%s", body)
	}
	for path, want := range map[string]string{
		"/c/blog/hit":       "/c/blog?counted",
		"/c/blog/hit?embed": "/c/blog/embed?button&counted",
	} {
		resp, _ = a.do(t, "POST", path, nil, nil)
		wantStatus(t, resp, http.StatusSeeOther)
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("%s redirects to %q, want %q", path, got, want)
		}
		resp, _ = a.do(t, "GET", want, nil, nil)
		wantStatus(t, resp, 200)
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 3 {
		t.Errorf("blog: %d hits, want 3 (the redirect targets only read)", got)
	}
}

// Names outside the rule get 400, unknown ones 404, each with a clear
// message, and nothing is counted or created anywhere.
func TestCounterNamesRefused(t *testing.T) {
	a := newAppWith(t, web.Config{})
	for _, tt := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/c/Blog", 400, "That is not a valid counter name"},
		{"GET", "/c/-x", 400, "That is not a valid counter name"},
		{"GET", "/c/" + url.PathEscape("a b"), 400, "That is not a valid counter name"},
		{"GET", "/c/" + strings.Repeat("a", 64), 400, "That is not a valid counter name"},
		{"POST", "/c/%C3%A9/hit", 400, "That is not a valid counter name"},
		// An empty name is not the main counter (found by FuzzCounterName).
		{"POST", "/c//hit", 400, "That is not a valid counter name"},
		{"GET", "/c//embed", 400, "That is not a valid counter name"},
		{"GET", "/c/nope", 404, "That counter does not exist."},
		{"POST", "/c/nope/hit", 404, "That counter does not exist."},
		{"GET", "/c/nope/count", 404, "That counter does not exist."},
		{"GET", "/c/nope/embed", 404, "That counter does not exist."},
	} {
		resp, body := a.do(t, tt.method, tt.path, nil, nil)
		if resp.StatusCode != tt.status || !strings.Contains(parse(t, body).Find(".problem").Text(), tt.msg) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, parse(t, body).Find(".problem").Text(), tt.status, tt.msg)
		}
	}
	var n int64
	for _, name := range []string{"main", "blog"} {
		n += testdb.Hits(t, a.dbURL, name)
	}
	if n != 0 {
		t.Errorf("%d hits counted by refused requests", n)
	}
}

// Crawlers count apart from views and visitors; the owner's networks and
// a browser that asked not to be counted count nothing; views over the
// burst cap are recorded as filtered.
func TestWhatCounts(t *testing.T) {
	t.Run("bots", func(t *testing.T) {
		a := newAppWith(t, web.Config{})
		for _, ua := range []string{
			"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		} {
			resp, _ := a.do(t, "GET", "/c/blog", nil, map[string]string{"User-Agent": ua})
			wantStatus(t, resp, 200)
		}
		a.do(t, "GET", "/c/blog", nil, nil)
		// A press of +1 is a person's, whatever the client says it is.
		a.do(t, "POST", "/c/blog/hit", nil, map[string]string{"User-Agent": "curl/8.5.0"})
		v := a.apiCounter(t, "blog")
		if v["total"] != 2.0 || v["views_today"] != 2.0 || v["visitors_today"] != 2.0 || v["bots_today"] != 2.0 {
			t.Errorf("got %v, want 2 views by 2 visitors and 2 bots", v)
		}
	})
	t.Run("not counted networks", func(t *testing.T) {
		a := newAppWith(t, web.Config{NotCounted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		a.do(t, "GET", "/c/blog", nil, nil)
		resp, body := a.do(t, "POST", "/c/blog/hit", nil, htmx)
		wantStatus(t, resp, 200)
		if figure(t, body, "count") != 0 {
			t.Errorf("the owner's click shows %d", figure(t, body, "count"))
		}
		if v := a.apiCounter(t, "blog"); v["total"] != 0.0 || v["bots_today"] != 0.0 || v["filtered_today"] != 0.0 {
			t.Errorf("the owner's network counted: %v", v)
		}
	})
	t.Run("burst cap", func(t *testing.T) {
		a := newAppWith(t, web.Config{BurstLimit: 2})
		for range 5 {
			resp, _ := a.do(t, "GET", "/c/blog", nil, nil)
			wantStatus(t, resp, 200)
		}
		a.do(t, "GET", "/", nil, nil) // its own cap per counter
		v := a.apiCounter(t, "blog")
		if v["total"] != 2.0 || v["views_today"] != 2.0 || v["filtered_today"] != 3.0 {
			t.Errorf("got %v, want 2 views and 3 filtered", v)
		}
		if got := testdb.Hits(t, a.dbURL, "main"); got != 1 {
			t.Errorf("main: %d hits, want 1", got)
		}
	})
}

// "Don't count my views on this browser": one explicit click sets the
// cookie, which stops counting; another click clears it. No other answer
// sets a cookie.
func TestDontCountMe(t *testing.T) {
	a := newAppWith(t, web.Config{})
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for _, path := range []string{"/", "/c/blog", "/c/blog/embed", "/c/blog/count", "/api/counters/blog"} {
		if resp, _ := a.do(t, "GET", path, nil, nil); len(resp.Cookies()) != 0 {
			t.Errorf("GET %s sets a cookie: %v", path, resp.Header["Set-Cookie"])
		}
	}
	resp, body := a.do(t, "GET", "/c/blog", nil, nil)
	if got := parse(t, body).Find("#dont-count").Text(); got != "Don't count my views on this browser" {
		t.Errorf("the toggle says %q", got)
	}
	resp, _ = a.do(t, "POST", "/dont-count", strings.NewReader("count=no&back=/c/blog"), form)
	wantStatus(t, resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/c/blog?counted" {
		t.Errorf("back to %q", got)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Value != "1" || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].MaxAge <= 0 {
		t.Fatalf("cookie: %v", resp.Header["Set-Cookie"])
	}
	cookie := map[string]string{"Cookie": cookies[0].Name + "=1"}
	before := testdb.Hits(t, a.dbURL, "blog")
	resp, body = a.do(t, "GET", "/c/blog", nil, cookie)
	wantStatus(t, resp, 200)
	a.do(t, "GET", "/c/blog/badge.svg", nil, cookie)
	a.do(t, "POST", "/c/blog/hit", nil, mergeHeaders(cookie, htmx))
	if got := testdb.Hits(t, a.dbURL, "blog"); got != before {
		t.Errorf("with the cookie: %d hits counted", got-before)
	}
	if got := parse(t, body).Find("#dont-count").Text(); got != "Count my views again" {
		t.Errorf("the toggle says %q", got)
	}
	resp, _ = a.do(t, "POST", "/dont-count", strings.NewReader("count=yes&back=/c/blog"), mergeHeaders(form, cookie))
	wantStatus(t, resp, http.StatusSeeOther)
	if c := resp.Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("the cookie is not cleared: %v", resp.Header["Set-Cookie"])
	}
	for _, bad := range []string{"count=maybe&back=/c/blog", "count=no&back=https://evil.example/", "count=no&back=//evil.example", "count=no&back=/c/Bad"} {
		resp, body = a.do(t, "POST", "/dont-count", strings.NewReader(bad), form)
		if resp.StatusCode != 400 || len(resp.Cookies()) != 0 || parse(t, body).Find(".problem").Text() == "" {
			t.Errorf("%s: %d, cookies %v, want 400 with a message and no cookie", bad, resp.StatusCode, resp.Header["Set-Cookie"])
		}
	}
}

// X-Forwarded-Proto is believed from a trusted proxy only, as the client
// IP header is: from any other peer it would make the snippets offer
// https:// and the don't-count cookie Secure on a plain-http server.
func TestForwardedProtoOnlyFromTrustedProxies(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	other := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		name  string
		cfg   web.Config
		https bool
	}{
		{"reachable directly", web.Config{}, false},
		{"from a peer not in TRUSTED_PROXIES", web.Config{ClientIPHeader: "X-Real-IP", TrustedProxies: other}, false},
		{"from a peer not in TRUSTED_PROXIES, no client IP header", web.Config{TrustedProxies: other}, false},
		{"from a trusted proxy", web.Config{ClientIPHeader: "X-Real-IP", TrustedProxies: local}, true},
		{"from a trusted proxy, no client IP header", web.Config{TrustedProxies: local}, true},
		{"a client IP header trusted from any peer", web.Config{ClientIPHeader: "X-Real-IP"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newAppWith(t, tt.cfg)
			proto := map[string]string{"X-Forwarded-Proto": "https"}
			base := a.srv.URL
			if tt.https {
				base = "https://" + strings.TrimPrefix(base, "http://")
			}
			_, body := a.do(t, "GET", "/c/blog", nil, proto)
			doc := parse(t, body)
			for id, want := range map[string]string{
				"snippet-badge":  "(" + base + "/c/blog/badge.svg)](" + base + "/c/blog)",
				"snippet-iframe": `<iframe src="` + base + `/c/blog/embed?button"`,
				"snippet-json":   base + "/api/counters/blog",
			} {
				if got := doc.Find("#" + id).Text(); !strings.Contains(got, want) {
					t.Errorf("#%s is %q, want it to contain %q", id, got, want)
				}
			}
			resp, _ := a.do(t, "POST", "/dont-count", strings.NewReader("count=no&back=/c/blog"),
				mergeHeaders(proto, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}))
			wantStatus(t, resp, http.StatusSeeOther)
			if c := resp.Cookies(); len(c) != 1 || c[0].Secure != tt.https {
				t.Errorf("cookie %v, want Secure %v", resp.Header["Set-Cookie"], tt.https)
			}
		})
	}
}

func mergeHeaders(hs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// The embed may be framed by the listed origins only; every other page
// refuses all framing. ?count=0 reads, ?button adds the +1.
func TestEmbedFraming(t *testing.T) {
	a := newAppWith(t, web.Config{EmbedOrigins: []string{"https://blog.example.com", "http://localhost:4000"}})
	resp, body := a.do(t, "GET", "/c/blog/embed?button", nil, nil)
	wantStatus(t, resp, 200)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self' https://blog.example.com http://localhost:4000") || strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("embed CSP: %q", csp)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "" {
		t.Errorf("embed X-Frame-Options: %q, want none (it cannot list origins)", got)
	}
	if figure(t, body, "count") != 1 || parse(t, body).Find(`form[action="/c/blog/hit?embed"]`).Length() != 1 {
		t.Errorf("embed with a button:\n%s", body)
	}
	resp, body = a.do(t, "GET", "/c/blog/embed?count=0", nil, nil)
	wantStatus(t, resp, 200)
	if figure(t, body, "count") != 1 || parse(t, body).Find("form").Length() != 0 {
		t.Errorf("read-only embed without a button:\n%s", body)
	}
	resp, body = a.do(t, "GET", "/c/blog/embed?count=2", nil, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, "count must be 0 or 1.") {
		t.Errorf("count=2: %d", resp.StatusCode)
	}
	checked := 0
	for _, path := range []string{"/", "/c/blog", "/c/blog/count", "/c/nope/embed", "/c/blog/badge.svg"} {
		resp, _ := a.do(t, "GET", path, nil, nil)
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: CSP %q, X-Frame-Options %q: want framing refused", path, resp.Header.Get("Content-Security-Policy"), resp.Header.Get("X-Frame-Options"))
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no page checked")
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 3 {
		t.Errorf("blog: %d hits, want 3 (the embed, the page, the badge)", got)
	}
}

// An embed view counts only when the browser shows it: framed by this
// origin or an allowed one, or opened by itself. Framed by another site,
// the browser shows an error page instead (frame-ancestors), so nothing
// counts; each request still answers 200 with the same CSP.
func TestEmbedCountsOnlyWhenShown(t *testing.T) {
	a := newAppWith(t, web.Config{EmbedOrigins: []string{"https://blog.example.com"}})
	host := strings.TrimPrefix(a.srv.URL, "http://")
	framed := func(site, referer string) map[string]string {
		h := map[string]string{"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": site}
		if referer != "" {
			h["Referer"] = referer
		}
		return h
	}
	cases := []struct {
		name   string
		header map[string]string
		counts bool
	}{
		{"framed by an allowed origin", framed("cross-site", "https://blog.example.com/posts/1"), true},
		{"allowed origin, other case", framed("cross-site", "https://BLOG.example.com/"), true},
		{"framed by this origin", framed("same-origin", a.srv.URL+"/c/blog"), true},
		{"framed by another site", framed("cross-site", "https://evil.example/"), false},
		{"allowed host, other scheme", framed("cross-site", "http://blog.example.com/"), false},
		{"framed by a sibling subdomain", framed("same-site", "https://www.example.com/"), false},
		{"framed, no Referer", framed("cross-site", ""), false},
		{"opened by itself", map[string]string{"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "none"}, true},
		{"no Fetch Metadata, no Referer", nil, true},
		{"no Fetch Metadata, Referer of this host", map[string]string{"Referer": "http://" + host + "/c/blog"}, true},
		{"no Fetch Metadata, Referer of an allowed origin", map[string]string{"Referer": "https://blog.example.com/"}, true},
		{"no Fetch Metadata, Referer of another site", map[string]string{"Referer": "https://evil.example/"}, false},
	}
	counted, refused := 0, 0
	for _, c := range cases {
		before := testdb.Hits(t, a.dbURL, "blog")
		resp, _ := a.do(t, "GET", "/c/blog/embed?button", nil, c.header)
		wantStatus(t, resp, 200)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://blog.example.com") {
			t.Errorf("%s: CSP %q", c.name, csp)
		}
		want := before
		if c.counts {
			want++
			counted++
		} else {
			refused++
		}
		if got := testdb.Hits(t, a.dbURL, "blog"); got != want {
			t.Errorf("%s: %d hits after, want %d", c.name, got, want)
		}
	}
	if counted == 0 || refused == 0 {
		t.Fatalf("cases counted %d, refused %d: both kinds must be tried", counted, refused)
	}
}

// An embed's looks: ?button (button=1) adds +1 and button=0 leaves it out,
// ?compact keeps the total alone, ?theme fixes the colour scheme; a bad
// value is a 400 that says which, and counts nothing. A no-JavaScript click
// returns to the embed as it was.
func TestEmbedOptions(t *testing.T) {
	a := newAppWith(t, web.Config{})
	for _, c := range []struct {
		query, scheme   string
		button, compact bool
	}{
		{"", "light dark", false, false},
		{"button", "light dark", true, false},
		{"button=1&theme=auto", "light dark", true, false},
		{"button=0", "light dark", false, false},
		{"compact&button&theme=dark", "dark", true, true},
		{"compact=1&theme=light", "light", false, true},
		{"compact=0&theme=dark", "dark", false, false},
	} {
		resp, body := a.do(t, "GET", "/c/blog/embed?"+c.query, nil, nil)
		wantStatus(t, resp, 200)
		doc := parse(t, body)
		if got := doc.Find(`meta[name="color-scheme"]`).AttrOr("content", ""); got != c.scheme {
			t.Errorf("?%s: color-scheme %q, want %q", c.query, got, c.scheme)
		}
		if got := doc.Find("form").Length() == 1; got != c.button {
			t.Errorf("?%s: a +1 button %v, want %v", c.query, got, c.button)
		}
		if got := doc.Find("html.compact").Length() == 1; got != c.compact {
			t.Errorf("?%s: compact %v, want %v", c.query, got, c.compact)
		}
	}
	before := testdb.Hits(t, a.dbURL, "blog")
	for query, msg := range map[string]string{
		"button=yes":  "button must be 0 or 1.",
		"compact=2":   "compact must be 0 or 1.",
		"theme=pink":  "theme must be light, dark or auto.",
		"count=maybe": "count must be 0 or 1.",
	} {
		resp, body := a.do(t, "GET", "/c/blog/embed?"+query, nil, nil)
		if resp.StatusCode != 400 || !strings.Contains(body, msg) {
			t.Errorf("?%s: %d, want 400 saying %q", query, resp.StatusCode, msg)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != before {
		t.Errorf("refused embeds counted: %d hits, want %d", got, before)
	}
	// The dark compact embed's +1, JavaScript off: back to the same embed.
	resp, body := a.do(t, "GET", "/c/blog/embed?compact&button&theme=dark", nil, nil)
	wantStatus(t, resp, 200)
	action := parse(t, body).Find("form").AttrOr("action", "")
	resp, _ = a.do(t, "POST", action, nil, nil)
	if got := resp.Header.Get("Location"); resp.StatusCode != 303 || got != "/c/blog/embed?button&compact&theme=dark&counted" {
		t.Errorf("POST %s: %d to %q, want 303 back to the dark compact embed", action, resp.StatusCode, got)
	}
	// The front page's counter, main, has its embed under /c/main too.
	resp, body = a.do(t, "GET", "/c/main/embed?button", nil, nil)
	wantStatus(t, resp, 200)
	if action := parse(t, body).Find("form").AttrOr("action", ""); action != "/c/main/hit?embed" {
		t.Errorf("main's embed posts to %q, want /c/main/hit?embed", action)
	}
	resp, _ = a.do(t, "POST", "/c/main/hit?embed", nil, nil)
	if got := resp.Header.Get("Location"); resp.StatusCode != 303 || got != "/c/main/embed?button&counted" {
		t.Errorf("POST /c/main/hit?embed: %d to %q, want 303 back to main's embed", resp.StatusCode, got)
	}
}

// The JSON API: shapes, CORS for reads, problem details for errors, and
// writes only with the token.
func TestJSONAPI(t *testing.T) {
	a := newAppWith(t, web.Config{APIToken: "s3cret-token"})
	a.do(t, "GET", "/c/blog", nil, nil)

	resp, body := a.do(t, "GET", "/api/counters/blog", nil, map[string]string{"Origin": "https://elsewhere.example"})
	wantStatus(t, resp, 200)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers: %v", resp.Header)
	}
	var c struct {
		Name          string    `json:"name"`
		Total         *int64    `json:"total"`
		Day           string    `json:"day"`
		ViewsToday    *int64    `json:"views_today"`
		VisitorsToday *int64    `json:"visitors_today"`
		BotsToday     *int64    `json:"bots_today"`
		FilteredToday *int64    `json:"filtered_today"`
		Updated       time.Time `json:"updated"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if c.Name != "blog" || *c.Total != 1 || *c.ViewsToday != 1 || *c.VisitorsToday != 1 || *c.BotsToday != 0 || *c.FilteredToday != 0 ||
		c.Day != time.Now().UTC().Format(time.DateOnly) || time.Since(c.Updated) > time.Minute {
		t.Errorf("got %s", body)
	}

	resp, body = a.do(t, "GET", "/api/counters/blog/days", nil, nil)
	wantStatus(t, resp, 200)
	var d struct {
		Name, From, To string
		Days           []struct {
			Day                             string
			Views, Visitors, Bots, Filtered int64
		}
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Days) != 30 || d.To != c.Day || d.Days[29].Day != c.Day || d.Days[29].Views != 1 || d.Days[0].Views != 0 {
		t.Errorf("days: %s", body)
	}
	resp, body = a.do(t, "GET", "/api/counters/blog/days?from=2026-01-01&to=2026-01-03", nil, nil)
	if err := json.Unmarshal([]byte(body), &d); err != nil || len(d.Days) != 3 || d.Days[0].Day != "2026-01-01" {
		t.Errorf("a chosen range: %d %s", resp.StatusCode, body)
	}

	for _, tt := range []struct {
		path   string
		status int
		detail string
	}{
		{"/api/counters/nope", 404, "That counter does not exist."},
		{"/api/counters/Nope", 400, "That is not a valid counter name"},
		{"/api/counters/blog/days?from=yesterday", 400, "from must be a date, YYYY-MM-DD."},
		{"/api/counters/blog/days?to=2026-13-01", 400, "to must be a date, YYYY-MM-DD."},
		{"/api/counters/blog/days?from=2026-02-01&to=2026-01-01", 400, "from must not be after to."},
		{"/api/counters/blog/days?from=2020-01-01&to=2026-01-01", 400, "Ask for at most 366 days at a time."},
	} {
		resp, body := a.do(t, "GET", tt.path, nil, nil)
		var p struct {
			Status int
			Detail string
		}
		_ = json.Unmarshal([]byte(body), &p)
		if resp.StatusCode != tt.status || p.Status != tt.status || !strings.HasPrefix(p.Detail, tt.detail) ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.detail)
		}
	}

	// Writes: the token, and nothing else.
	for _, tt := range []struct {
		auth   string
		status int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{"Basic czNjcmV0LXRva2Vu", 401},
		{"bearer s3cret-token", 401},
		{"Bearer s3cret-token", 200},
	} {
		h := map[string]string{}
		if tt.auth != "" {
			h["Authorization"] = tt.auth
		}
		resp, body := a.do(t, "POST", "/api/counters/blog/hit", nil, h)
		if resp.StatusCode != tt.status {
			t.Errorf("Authorization %q: %d %s, want %d", tt.auth, resp.StatusCode, body, tt.status)
		}
		if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", tt.auth)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 2 {
		t.Errorf("blog: %d hits, want 2 (the page view and the one authorised write)", got)
	}

	off := newAppWith(t, web.Config{})
	resp, body = off.do(t, "POST", "/api/counters/blog/hit", nil, map[string]string{"Authorization": "Bearer "})
	if resp.StatusCode != 403 || !strings.Contains(body, "switched off") {
		t.Errorf("without a token configured: %d %s", resp.StatusCode, body)
	}
}

// Many clients at once, people and crawlers, with and without a burst cap:
// every figure of the day row comes out exact.
func TestNamedCounterExactUnderConcurrency(t *testing.T) {
	const clients, each, people = 20, 25, 5 // 500 requests: 400 views by 5 visitors, 100 bots
	for _, tt := range []struct {
		burst                     int
		views, visitors, filtered float64
		checkVisitors             bool
	}{
		{0, 400, people, 0, true},
		{150, 150, 0, 250, false}, // which people made the first 150 views is up to the scheduler
	} {
		t.Run(fmt.Sprintf("burst limit %d", tt.burst), func(t *testing.T) {
			a := newAppWith(t, web.Config{BurstLimit: tt.burst})
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := range each {
						ua := fmt.Sprintf("%s Person/%d", browserUA, (c+i)%people)
						if i%5 == 4 {
							ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
						}
						req, _ := http.NewRequest("GET", a.srv.URL+"/c/blog/badge.svg", nil)
						req.Header.Set("User-Agent", ua)
						resp, err := client.Do(req)
						if err != nil {
							t.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							t.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			}
			wg.Wait()
			v := a.apiCounter(t, "blog")
			if v["total"] != tt.views || v["views_today"] != tt.views || v["bots_today"] != 100.0 || v["filtered_today"] != tt.filtered {
				t.Errorf("got %v, want %v views, 100 bots, %v filtered", v, tt.views, tt.filtered)
			}
			if tt.checkVisitors && v["visitors_today"] != tt.visitors {
				t.Errorf("visitors: got %v, want %v", v["visitors_today"], tt.visitors)
			}
		})
	}
}

// waitPage polls path until check holds on its body, failing after 10s:
// the owner's switches reach the app by notification.
func (a *app) waitPage(t *testing.T, path, what string, check func(*http.Response, string) bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what+" at "+path, func() (bool, string) {
		resp, body := a.do(t, "GET", path, nil, nil)
		return check(resp, body), fmt.Sprintf("%d\n%s", resp.StatusCode, body)
	})
}

// The owner's switches (hitcounter counters switch): with +1 off, neither
// the page nor an embed offers it and the hit route refuses, counting
// nothing; with the page off, /c/NAME is a 404 while badges, embeds and
// the API go on. Switched back on, all returns.
func TestOwnerSwitches(t *testing.T) {
	a := newAppWith(t, web.Config{})
	testdb.Exec(t, a.dbURL, `update counters set plus_one = false where name = 'blog'`)
	a.waitPage(t, "/c/blog?counted", "page without +1", func(resp *http.Response, body string) bool {
		return resp.StatusCode == 200 && parse(t, body).Find("form[hx-post]").Length() == 0
	})
	resp, body := a.do(t, "GET", "/c/blog/embed?button&count=0", nil, nil)
	if resp.StatusCode != 200 || parse(t, body).Find("form").Length() != 0 {
		t.Errorf("embed?button with +1 off: %d, %d forms", resp.StatusCode, parse(t, body).Find("form").Length())
	}
	before := testdb.Hits(t, a.dbURL, "blog")
	for _, h := range []map[string]string{nil, htmx} {
		resp, body := a.do(t, "POST", "/c/blog/hit", nil, h)
		if resp.StatusCode != 403 || !strings.Contains(body, "The owner has switched +1 off for this counter.") {
			t.Errorf("POST /c/blog/hit (htmx %v) with +1 off: %d\n%s", h != nil, resp.StatusCode, body)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != before {
		t.Errorf("refused clicks counted: %d hits, want %d", got, before)
	}

	testdb.Exec(t, a.dbURL, `update counters set page = false where name = 'blog'`)
	// Waited for on the page that only reads, so no view counts meanwhile.
	a.waitPage(t, "/c/blog?counted", "404", func(resp *http.Response, body string) bool {
		return resp.StatusCode == 404
	})
	resp, body = a.do(t, "GET", "/c/blog", nil, nil)
	if resp.StatusCode != 404 || !strings.Contains(body, "This counter has no public page.") || parse(t, body).Find(`a[href="/"]`).Length() != 1 {
		t.Errorf("/c/blog with the page off: %d\n%s", resp.StatusCode, body)
	}
	for _, path := range []string{"/c/blog/badge.svg", "/c/blog/embed", "/api/counters/blog", "/c/blog/count"} {
		if resp, _ := a.do(t, "GET", path, nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s with the page off: %d, want 200", path, resp.StatusCode)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != before+2 {
		t.Errorf("blog: %d hits, want %d (the badge and the embed, not the refused page)", got, before+2)
	}

	testdb.Exec(t, a.dbURL, `update counters set page = true, plus_one = true where name = 'blog'`)
	a.waitPage(t, "/c/blog?counted", "page with +1 again", func(resp *http.Response, body string) bool {
		return resp.StatusCode == 200 && parse(t, body).Find("form[hx-post]").Length() == 1
	})
	if resp, _ := a.do(t, "POST", "/c/blog/hit", nil, htmx); resp.StatusCode != 200 {
		t.Errorf("+1 switched back on: %d", resp.StatusCode)
	}

	// The front page is main's: switched off there too, and when main is
	// missing its 404 does not link back to itself.
	testdb.Exec(t, a.dbURL, `update counters set plus_one = false where name = 'main'`)
	a.waitPage(t, "/?counted", "front page without +1", func(resp *http.Response, body string) bool {
		return resp.StatusCode == 200 && parse(t, body).Find("form[hx-post]").Length() == 0
	})
	testdb.Exec(t, a.dbURL, `delete from counters where name = 'main'`)
	a.waitPage(t, "/", "404 of the missing main", func(resp *http.Response, body string) bool {
		return resp.StatusCode == 404
	})
	checked := 0
	for _, path := range []string{"/", "/c/main"} {
		resp, body := a.do(t, "GET", path, nil, nil)
		checked++
		if resp.StatusCode != 404 || parse(t, body).Find(`a[href="/"]`).Length() != 0 {
			t.Errorf("GET %s with main missing: %d, links to /: %d", path, resp.StatusCode, parse(t, body).Find(`a[href="/"]`).Length())
		}
	}
	if resp, body := a.do(t, "GET", "/c/nope", nil, nil); resp.StatusCode != 404 || parse(t, body).Find(`a[href="/"]`).Length() != 1 {
		t.Errorf("GET /c/nope: %d, want 404 with a link to the front page", resp.StatusCode)
	}
	if checked != 2 {
		t.Fatal("not every path checked")
	}
}

// The counter page shows today's bots apart (a first test with curl is
// one), an empty chart says so, the badge is previewed beside its snippet,
// each snippet has its Copy button, and the front page points at named
// counters.
func TestCounterPageDetails(t *testing.T) {
	a := newAppWith(t, web.Config{})
	a.do(t, "GET", "/c/blog", nil, map[string]string{"User-Agent": "curl/8.5.0"})
	cookie := map[string]string{"Cookie": "hitcounter_dont_count=1"}
	resp, body := a.do(t, "GET", "/c/blog", nil, cookie)
	wantStatus(t, resp, 200)
	doc := parse(t, body)
	if got := doc.Find("#bots").Text(); got != "1" || !strings.Contains(doc.Find(".bots").Text(), "not counted") {
		t.Errorf("bots today: %q in %q, want 1, said not counted", got, doc.Find(".bots").Text())
	}
	if figure(t, body, "count") != 0 || doc.Find("#chart-empty").Length() != 1 || doc.Find("#chart").Length() != 0 {
		t.Errorf("no views yet: want a count of 0 and the empty chart's words:\n%s", body)
	}
	if got := doc.Find("img#badge-preview").AttrOr("src", ""); got != "/c/blog/badge.svg?count=0" {
		t.Errorf("badge preview src %q", got)
	}
	areas := doc.Find(".snippet textarea")
	copies := 0
	areas.Each(func(_ int, ta *goquery.Selection) {
		id := ta.AttrOr("id", "")
		if ta.Parent().Find(`button.copy[data-copy="`+id+`"]`).Length() == 1 {
			copies++
		}
	})
	if areas.Length() < 4 || copies != areas.Length() {
		t.Errorf("%d snippets, %d with their Copy button", areas.Length(), copies)
	}
	if doc.Find(`script[src="/static/copy.js"]`).Length() != 1 {
		t.Error("the page does not load copy.js")
	}
	if resp, _ := a.do(t, "GET", "/static/copy.js", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/static/copy.js: %d", resp.StatusCode)
	}
	// The poll of the page (and only it) carries the bots and the chart.
	_, body = a.do(t, "GET", "/c/blog/count?page", nil, htmx)
	if doc := parse(t, body); doc.Find("#bots").Length() != 1 || doc.Find(`#history[hx-swap-oob]`).Length() != 1 {
		t.Errorf("the page's poll lacks the bots or the chart:\n%s", body)
	}
	_, body = a.do(t, "GET", "/c/blog/count", nil, htmx)
	if doc := parse(t, body); doc.Find("#bots").Length() != 0 || doc.Find("#history").Length() != 0 {
		t.Errorf("an embed's poll carries the page's parts:\n%s", body)
	}
	_, body = a.do(t, "GET", "/", nil, nil)
	if !strings.Contains(parse(t, body).Find(".hint").Text(), "/c/NAME") {
		t.Errorf("the front page does not mention named counters:\n%s", body)
	}
}

// Every API error is problem JSON, those of the middleware included, and
// a read's CORS preflight is answered.
func TestAPIPreflightAndProblems(t *testing.T) {
	a := newAppWith(t, web.Config{APIToken: "secret", MaxBodyBytes: 1024})
	resp, body := a.do(t, "OPTIONS", "/api/counters/blog/days", nil, map[string]string{
		"Origin": "https://blog.example.com", "Access-Control-Request-Method": "GET",
		"Access-Control-Request-Headers": "x-request-id"})
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
		h.Get("Access-Control-Allow-Headers") != "x-request-id" || body != "" {
		t.Errorf("preflight: %d %v %q", resp.StatusCode, h, body)
	}
	big := strings.Repeat("x", 2048)
	cases := []struct {
		method, path string
		header       map[string]string
		body         string
		status       int
		detail       string
	}{
		{"DELETE", "/api/counters/blog", nil, "", 405, "This address does not accept DELETE requests."},
		{"OPTIONS", "/api/counters/blog", nil, "", 405, "This address does not accept OPTIONS requests."},
		{"POST", "/api/counters/blog/hit", map[string]string{"Authorization": "Bearer secret", "Sec-Fetch-Site": "cross-site"}, "", 403, "Cross-site requests are refused."},
		{"POST", "/api/counters/blog/hit", map[string]string{"Authorization": "Bearer secret"}, big, 413, "The request body is too large."},
		{"GET", "/api/nope", nil, "", 404, "There is no page at this address."},
		{"GET", "/api/counters/nope", nil, "", 404, "That counter does not exist."},
	}
	for _, c := range cases {
		var rd io.Reader
		if c.body != "" {
			rd = strings.NewReader(c.body)
		}
		resp, body := a.do(t, c.method, c.path, rd, c.header)
		var p struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		err := json.Unmarshal([]byte(body), &p)
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || err != nil ||
			p.Status != c.status || p.Detail != c.detail || p.Title != http.StatusText(c.status) {
			t.Errorf("%s %s: %d %q, %v\n%s", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: the error is not readable from other origins", c.method, c.path)
		}
	}
	if got := testdb.Hits(t, a.dbURL, "blog"); got != 0 {
		t.Errorf("refused requests counted: %d", got)
	}
	// Outside /api/ errors stay pages.
	if resp, _ := a.do(t, "DELETE", "/c/blog", nil, nil); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("DELETE /c/blog: %q, want a page", resp.Header.Get("Content-Type"))
	}
}

// With AUTO_CREATE on, one client creates at most maxCreations counters
// an hour: its next new name is 404 and nothing is made, while its
// counters keep counting and another client still creates. A crawler
// creates nothing.
func TestAutoCreateLimitedPerClient(t *testing.T) {
	t.Parallel()
	a := newAppStore(t, web.Config{ClientIPHeader: "X-Real-IP", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		testdb.NewMigrated(t), func(c *db.Config) { c.AutoCreate = true })
	from := func(ip string) map[string]string { return map[string]string{"X-Real-IP": ip} }
	counters := func() int64 {
		conn := testdb.Connect(t, a.dbURL)
		defer conn.Close(context.Background())
		var n int64
		if err := conn.QueryRow(context.Background(), `select count(*) from counters`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for i := range web.MaxCreations {
		resp, body := a.do(t, "GET", fmt.Sprintf("/c/a-%d", i), nil, from("203.0.113.1"))
		wantStatus(t, resp, 200)
		if n := countIn(t, body); n != 1 {
			t.Fatalf("the first view of new name a-%d shows %d, want 1", i, n)
		}
	}
	resp, body := a.do(t, "GET", "/c/one-too-many", nil, from("203.0.113.1"))
	if resp.StatusCode != 404 || !strings.Contains(body, "That counter does not exist.") {
		t.Errorf("the client's new name number %d: %d, want 404 saying the counter does not exist", web.MaxCreations+1, resp.StatusCode)
	}
	resp, body = a.do(t, "GET", "/c/a-0", nil, from("203.0.113.1"))
	if wantStatus(t, resp, 200); countIn(t, body) != 2 {
		t.Errorf("a counter the client made, viewed again: %d, want 2", countIn(t, body))
	}
	resp, _ = a.do(t, "GET", "/c/b-0", nil, from("203.0.113.2"))
	wantStatus(t, resp, 200)
	resp, _ = a.do(t, "GET", "/c/crawled", nil, map[string]string{"X-Real-IP": "203.0.113.3", "User-Agent": "GPTBot/1.2"})
	wantStatus(t, resp, 404)
	if got, want := counters(), int64(1+web.MaxCreations+1); got != want {
		t.Errorf("%d counters, want %d: main, the client's %d and the other client's one", got, want, web.MaxCreations)
	}

	// The configuration's documentation says the same limit.
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("at most %d counters an hour", web.MaxCreations); web.CreationWindow != time.Hour || !strings.Contains(string(doc), want) {
		t.Errorf("docs/configuration.md does not say %q (the limit is %d per %s)", want, web.MaxCreations, web.CreationWindow)
	}
}
