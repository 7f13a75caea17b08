package web_test

// Fuzz targets for everything a client controls: the request line, paths,
// query strings, bodies, the headers the app reads (HX-*, Origin,
// Sec-Fetch-Site, the client-IP header, cookies, User-Agent), counter names
// and badge parameters. Each input goes over a real TCP connection to the
// whole stack on a real database, so net/http parses it as it would in
// production. Whatever the input:
//
//   - no 5xx (the database is up) and no panic;
//   - a 4xx carries a message for the user;
//   - a 4xx counts nothing, and no request counts more than one hit.
//
// `go test` runs the seeds (f.Add and testdata/fuzz/); `make fuzz` fuzzes
// each target for a while, and `make test` runs it briefly.

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/web"
)

// fuzzApp is the stack for one fuzzing process: its own database with the
// counters main and blog, and a connection that reads what was counted.
type fuzzApp struct {
	addr string
	conn *pgx.Conn
	// wire is the HTTP connection, kept alive between inputs.
	wire net.Conn
	rd   *bufio.Reader
}

func newFuzzApp(f *testing.F) *fuzzApp {
	f.Helper()
	dbURL := testdb.NewMigrated(f)
	testdb.Exec(f, dbURL, `insert into counters (name) values ('blog')`)
	// Logs are dropped: millions of requests. A panic still shows, as a 500.
	log := slog.New(slog.DiscardHandler)
	store, err := db.Open(dbURL, db.DefaultConfig(), log)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(store.Close)
	h, err := web.NewServer(web.Config{
		// As behind nginx: the header and the proxies that may set it are
		// part of what a client tries.
		ClientIPHeader: "X-Real-IP",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		// Short, so a slow fuzzed request fails fast instead of stalling.
		RequestTimeout: 2 * time.Second,
	}, store, assets.FS, assets.HTMX, log)
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() { _ = srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(context.Background()) })
	a := &fuzzApp{addr: ln.Addr().String(), conn: conn}
	f.Cleanup(func() {
		if a.wire != nil {
			a.wire.Close()
		}
	})
	return a
}

// counted is everything a hit can change, summed over all counters: totals,
// day rows, visitors.
func (a *fuzzApp) counted(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	err := a.conn.QueryRow(ctx, `select
		(select coalesce(sum(hits), 0) from counters) +
		(select coalesce(sum(views + visitors + bots + filtered), 0) from counter_days)`).Scan(&n)
	if err != nil {
		t.Fatalf("read the counts: %v", err)
	}
	return n
}

// rawRequest is one HTTP/1.1 request as bytes on the wire.
type rawRequest struct {
	method, target string
	header         [][2]string
	body           string
}

// send writes r and reads the answer, on the connection of the last
// request while the server keeps it open: a new connection per input would
// fill the loopback's ports with TIME_WAIT sockets at fuzzing rates.
func (a *fuzzApp) send(t *testing.T, r rawRequest) (resp *http.Response, body string) {
	t.Helper()
	if a.wire == nil {
		conn, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a.wire, a.rd = conn, bufio.NewReader(conn)
	}
	conn := a.wire
	done := false
	defer func() {
		if !done || resp.Close { // a failed exchange leaves the stream out of step
			conn.Close()
			a.wire = nil
		}
	}()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.method, r.target, a.addr)
	for _, h := range r.header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(r.body), r.body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("%q: write: %v", b.String(), err)
	}
	resp, err := http.ReadResponse(a.rd, &http.Request{Method: r.method})
	if err != nil {
		t.Fatalf("%q: no HTTP answer: %v", b.String(), err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%q: read the answer: %v", b.String(), err)
	}
	done = true
	return resp, string(raw)
}

// check sends r and asserts the invariants of every request; it returns
// the answer and how many hits it counted.
func (a *fuzzApp) check(t *testing.T, r rawRequest) (resp *http.Response, body string, delta int64) {
	t.Helper()
	before := a.counted(t)
	resp, body = a.send(t, r)
	delta = a.counted(t) - before
	desc := fmt.Sprintf("%s %q %q body %q", r.method, r.target, r.header, r.body)
	if resp.StatusCode >= 500 {
		t.Fatalf("%s: status %d\n%s", desc, resp.StatusCode, body)
	}
	// One request is one hit at most: a view adds to the total, today's
	// views and (once a day) the visitors.
	if delta < 0 || delta > 3 {
		t.Fatalf("%s: status %d changed the counts by %d", desc, resp.StatusCode, delta)
	}
	if resp.StatusCode >= 400 {
		if delta != 0 {
			t.Fatalf("%s: refused with %d, yet counted (%d)", desc, resp.StatusCode, delta)
		}
		if r.method != "HEAD" && message(resp, body) == "" {
			t.Fatalf("%s: status %d without a message: %q", desc, resp.StatusCode, body)
		}
	}
	return resp, body, delta
}

// message is what an error answer tells the user: the problem paragraph
// of a page, the detail of problem JSON, the title of an error badge, or
// net/http's own plain text for a request it could not parse.
func message(resp *http.Response, body string) string {
	ctype := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ctype, "image/svg+xml"):
		var svg struct {
			Title string `xml:"title"`
		}
		if xml.Unmarshal([]byte(body), &svg) != nil {
			return ""
		}
		return strings.TrimSpace(svg.Title)
	case strings.HasPrefix(ctype, "application/problem+json"):
		var p struct{ Detail string }
		if json.Unmarshal([]byte(body), &p) != nil {
			return ""
		}
		return p.Detail
	case strings.HasPrefix(ctype, "text/html"):
		i := strings.Index(body, `class="problem"`)
		if i < 0 {
			return ""
		}
		rest := body[i:]
		rest = rest[strings.IndexByte(rest, '>')+1:]
		if j := strings.IndexByte(rest, '<'); j >= 0 {
			rest = rest[:j]
		}
		return strings.TrimSpace(rest)
	case strings.HasPrefix(ctype, "text/plain"):
		return strings.TrimSpace(body)
	}
	return ""
}

var fuzzMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"}

// headerValue drops the control characters net/http refuses in a header
// value: such a request never reaches the app (net/http answers 400 and
// closes with the body unread, so the client may read a reset instead).
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// Any request a client can make: method, target (path and query), body,
// its content type and the headers the app looks at.
func FuzzRequest(f *testing.F) {
	a := newFuzzApp(f)
	for _, s := range []struct {
		method                    uint8
		target, body, ctype, hx   string
		origin, fetchSite, ip, ua string
		cookie                    string
	}{
		{0, "/", "", "", "", "", "", "", browserUA, ""},
		{1, "/hit", "", "", "true", "", "same-origin", "", browserUA, ""},
		{1, "/hit", "a=b", "application/x-www-form-urlencoded", "", "http://evil.example", "cross-site", "", browserUA, ""},
		{1, "/c/blog/hit", "%zz=1", "application/x-www-form-urlencoded", "true", "", "", "203.0.113.9", browserUA, ""},
		{0, "/c/blog?counted", "", "", "", "", "", "", "curl/8.0", ""},
		{0, "/c/blog/count", "", "", "true", "", "", "::1", browserUA, ""},
		{0, "/c/BLOG", "", "", "", "", "", "", browserUA, ""},
		{0, "/c/%2e%2e/count", "", "", "", "", "", "", browserUA, ""},
		{0, "/c/blog/badge.svg?label=a&label=b", "", "", "", "", "", "", browserUA, ""},
		{0, "/c/blog/embed?button=1", "", "", "", "", "", "", browserUA, ""},
		{0, "/api/counters/blog/days?from=2026-01-01&to=2025-01-01", "", "", "", "", "", "", browserUA, ""},
		{1, "/api/counters/blog/hit", "{}", "application/json", "", "", "", "", browserUA, ""},
		{1, "/dont-count", "on=1", "application/x-www-form-urlencoded", "", "", "", "", browserUA, "hitcounter_dont_count=1"},
		{2, "/static/htmx.min.js", "", "", "", "", "", "", browserUA, ""},
		{3, "/hit", "", "", "", "", "", "", browserUA, ""},
		{0, "//c//blog", "", "", "", "", "", "not-an-ip", browserUA, ""},
		{0, "/readyz?x=%00", "", "", "", "", "", "", "", ""},
		{1, "/hit", strings.Repeat("x", 5000), "text/plain", "", "", "", "", browserUA, ""},
	} {
		f.Add(s.method, s.target, s.body, s.ctype, s.hx, s.origin, s.fetchSite, s.ip, s.ua, s.cookie)
	}
	f.Fuzz(func(t *testing.T, method uint8, target, body, ctype, hx, origin, fetchSite, ip, ua, cookie string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		// A request line with a space or line break in its target is not
		// a request: net/http answers 400 before the app sees it, which
		// the check accepts; but it must stay one line to be parsed at all.
		target = strings.NewReplacer(" ", "%20", "\r", "", "\n", "").Replace(target)
		if _, err := url.ParseRequestURI(target); err != nil {
			// net/http answers 400 itself, before reading a body; sent with
			// one, its answer may be lost to a reset (see headerValue).
			body = ""
		}
		r := rawRequest{method: fuzzMethods[int(method)%len(fuzzMethods)], target: target, body: body}
		for _, h := range [][2]string{
			{"Content-Type", ctype}, {"HX-Request", hx}, {"Origin", origin}, {"Sec-Fetch-Site", fetchSite},
			{"X-Real-IP", ip}, {"User-Agent", ua}, {"Cookie", cookie},
		} {
			if v := headerValue(h[1]); v != "" {
				r.header = append(r.header, [2]string{h[0], v})
			}
		}
		a.check(t, r)
	})
}

// Counter names in every route that takes one: a name the rule allows is
// served (or 404 when no such counter exists); any other is 400; neither
// counts anything it should not.
func FuzzCounterName(f *testing.F) {
	a := newFuzzApp(f)
	for _, s := range []string{"blog", "main", "nope", "Blog", "a", "", "-x", "a_b-c", strings.Repeat("a", 63), strings.Repeat("a", 64),
		"../main", "blog/", "blog%00", "ümlaut", "blog\u202e", "0", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		esc := url.PathEscape(name)
		for _, r := range []rawRequest{
			{method: "GET", target: "/c/" + esc},
			{method: "GET", target: "/c/" + esc + "/count"},
			{method: "GET", target: "/c/" + esc + "/badge.svg?count=0"},
			{method: "GET", target: "/c/" + esc + "/embed"},
			{method: "GET", target: "/api/counters/" + esc},
			{method: "POST", target: "/c/" + esc + "/hit", header: [][2]string{{"HX-Request", "true"}}},
		} {
			r.header = append(r.header, [2]string{"User-Agent", browserUA})
			resp, body, _ := a.check(t, r)
			exists := name == "blog" || name == "main"
			switch {
			case !db.ValidName(name): // "" too: /c//hit is not the main counter
				if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
					t.Fatalf("%s %s: invalid name %q answered %d, want 400 or 404\n%s", r.method, r.target, name, resp.StatusCode, body)
				}
			case exists:
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %s: counter %q answered %d, want 200\n%s", r.method, r.target, name, resp.StatusCode, body)
				}
			default:
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("%s %s: unknown counter %q answered %d, want 404\n%s", r.method, r.target, name, resp.StatusCode, body)
				}
			}
		}
	})
}

// Badge parameters: any answer is a well-formed SVG badge with a title and
// a positive width, for an <img>; a bad parameter is 400, as an error
// badge; count=0 never counts.
func FuzzBadgeParams(f *testing.F) {
	a := newFuzzApp(f)
	f.Add("views", "brightgreen", "555", "views", "0", "0", "flat")
	f.Add("hits & <b>", "%23abc", "4c1", "visitors", "0", "1", "plastic")
	f.Add("", "red;x", "url(#s)", "bogus", "2", "x", "social")
	f.Add(strings.Repeat("W", 40), "44cc11", "lightgrey", "today", "1", "1", "for-the-badge")
	f.Add("\u202eevil", "javascript:alert(1)", "", "", "", "", "")
	f.Add("日本語のラベル", "blue", "grey", "views", "0", "0", "flat-square")
	f.Add("ß straße", "RebeccaPurple", "fff", "visitors", "0", "0", "for-the-badge")
	f.Fuzz(func(t *testing.T, label, color, labelColor, show, count, abbr, style string) {
		q := url.Values{}
		for k, v := range map[string]string{"label": label, "color": color, "labelColor": labelColor, "show": show, "count": count, "abbr": abbr, "style": style} {
			if v != "" {
				q.Set(k, v)
			}
		}
		r := rawRequest{method: "GET", target: "/c/blog/badge.svg?" + q.Encode(), header: [][2]string{{"User-Agent", browserUA}}}
		resp, body, delta := a.check(t, r)
		if count == "0" && delta != 0 {
			t.Fatalf("%s: count=%q counted %d", r.target, count, delta)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 200 or 400\n%s", r.target, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "image/svg+xml; charset=utf-8" {
			t.Fatalf("%s: status %d as %q, want an SVG badge", r.target, resp.StatusCode, ct)
		}
		checkSVG(t, r.target, body)
	})
}

// checkSVG parses a badge: well-formed XML, an svg root with a positive
// width, a non-empty title.
func checkSVG(t *testing.T, what, body string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(body))
	var root, title string
	var width float64
	inTitle := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed SVG: %v\n%s", what, err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				for _, at := range tok.Attr {
					if at.Name.Local == "width" {
						width, _ = strconv.ParseFloat(at.Value, 64)
					}
				}
			}
			inTitle = tok.Name.Local == "title"
		case xml.CharData:
			if inTitle {
				title += string(tok)
			}
		case xml.EndElement:
			inTitle = false
		}
	}
	if root != "svg" || width <= 0 || strings.TrimSpace(title) == "" {
		t.Fatalf("%s: root %q, width %v, title %q\n%s", what, root, width, title, body)
	}
}
