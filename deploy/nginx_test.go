package deploy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/internal/nginx"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
	"github.com/hitcounter/hitcounter/views"
	"github.com/hitcounter/hitcounter/web"
)

// proxied is the production topology on this machine: the real nginx from
// the system package running the repository's nginx.conf, in front of the
// program's binary and a real PostgreSQL.
type proxied struct {
	app        *program
	dbURL      string
	httpURL    string // nginx's port 80 stand-in
	httpsURL   string // nginx's port 443 stand-in
	ca         *x509.CertPool
	webrootDir string
	nginx      *os.Process
}

// worldReadableDir is a temp dir nginx's unprivileged workers can read.
func worldReadableDir(t testing.TB) string {
	t.Helper()
	// Not t.TempDir: its parent folder is private to this user.
	d, err := os.MkdirTemp("", "hitcounter-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// proxyOptions adjust the stack for a test or benchmark: more replacements
// in nginx.conf, more environment for the app.
type proxyOptions struct {
	conf map[string]string
	env  map[string]string
}

func startProxied(t testing.TB, opts proxyOptions) *proxied {
	t.Helper()
	if _, err := nginx.Binary(); err != nil {
		t.Fatal(err)
	}
	dbURL := testdb.NewMigrated(t)
	env := map[string]string{
		"DATABASE_URL":     dbURL,
		"CLIENT_IP_HEADER": "X-Real-IP",
		"TRUSTED_PROXIES":  "127.0.0.1/32",
		"LOG_LEVEL":        "debug", // so a static request reaching the app would show
		"LOG_FORMAT":       "json",
	}
	maps.Copy(env, opts.env)
	app := startProgram(t, env)

	srv, err := nginx.Start(nginx.Options{
		Conf:      "nginx.conf",
		Upstream:  "deploy/nginx-upstream-local.conf",
		Assets:    "assets",
		Upstreams: []string{strings.TrimPrefix(app.base, "http://")},
		Replace:   opts.conf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("nginx logs:\n%s", srv.Logs.String())
		}
	})
	return &proxied{
		app:        app,
		dbURL:      dbURL,
		httpURL:    srv.HTTPURL,
		httpsURL:   srv.HTTPSURL,
		ca:         srv.CA,
		webrootDir: srv.Webroot,
		nginx:      srv.Process,
	}
}

// client talks to nginx from a given loopback address (127.0.0.0/8 is all
// loopback), so tests can tell the client's address from nginx's.
func (p *proxied) client(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:        d.DialContext,
			TLSClientConfig:    &tls.Config{RootCAs: p.ca, MinVersion: tls.VersionTLS12},
			DisableCompression: true, // the tests look at Content-Encoding themselves
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type answer struct {
	*http.Response
	body string
}

func send(t *testing.T, c *http.Client, method, url string, body io.Reader, header map[string]string) answer {
	t.Helper()
	resp, b := testkit.Do(t, c, method, url, body, header)
	return answer{resp, b}
}

// appRequests are the request log lines of the app, decoded.
func appRequests(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	return lines
}

func countOf(t *testing.T, body string) int64 {
	t.Helper()
	_, rest, ok := strings.Cut(body, `<strong id="count">`)
	num, _, ok2 := strings.Cut(rest, "</strong>")
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || !ok2 || err != nil {
		t.Fatalf("no count in:\n%s", body)
	}
	return n
}

func TestNginxInFront(t *testing.T) {
	p := startProxied(t, proxyOptions{env: map[string]string{"EMBED_ORIGINS": "https://blog.example.com"}})
	c := p.client("127.0.0.1")

	t.Run("page and htmx click through the proxy", func(t *testing.T) {
		page := send(t, c, "GET", p.httpsURL+"/", nil, nil)
		if page.StatusCode != 200 {
			t.Fatalf("GET / via nginx: %d\n%s", page.StatusCode, page.body)
		}
		n := countOf(t, page.body)
		// As a browser sends it: same-origin fetch, Origin with the port.
		click := send(t, c, "POST", p.httpsURL+"/hit", nil, map[string]string{
			"HX-Request": "true", "Origin": p.httpsURL, "Sec-Fetch-Site": "same-origin",
		})
		if click.StatusCode != 200 || countOf(t, click.body) != n+1 {
			t.Fatalf("htmx POST /hit via nginx: %d\n%s", click.StatusCode, click.body)
		}
		// Origin checked against the Host nginx forwards: a foreign origin is refused.
		evil := send(t, c, "POST", p.httpsURL+"/hit", nil, map[string]string{"Origin": "https://evil.example"})
		if evil.StatusCode != 403 {
			t.Fatalf("cross-origin POST via nginx: %d, want 403", evil.StatusCode)
		}
		if got := testdb.Hits(t, p.dbURL, "main"); got != n+1 {
			t.Fatalf("database has %d hits, want %d", got, n+1)
		}
	})

	t.Run("static files come from nginx with cache headers and gzip", func(t *testing.T) {
		want, _ := os.ReadFile(filepath.Join("assets", assets.HTMX))
		r := send(t, c, "GET", p.httpsURL+"/static/"+assets.HTMX, nil, map[string]string{"Accept-Encoding": "gzip"})
		if r.StatusCode != 200 {
			t.Fatalf("htmx via nginx: %d", r.StatusCode)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("htmx Cache-Control %q", cc)
		}
		if r.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("htmx not served gzipped (Content-Encoding %q)", r.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(zr)
		if !bytes.Equal(got, want) {
			t.Errorf("gzipped htmx does not unpack to the vendored file")
		}

		css := send(t, c, "GET", p.httpsURL+"/static/style.css", nil, map[string]string{"Accept-Encoding": "gzip"})
		if css.StatusCode != 200 || css.Header.Get("Cache-Control") != "no-cache" || css.Header.Get("ETag") == "" {
			t.Errorf("style.css via nginx: %d, Cache-Control %q, ETag %q", css.StatusCode, css.Header.Get("Cache-Control"), css.Header.Get("ETag"))
		}
		if css.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
			t.Errorf("style.css via nginx: Content-Encoding %q, Content-Type %q; want gzip, text/css",
				css.Header.Get("Content-Encoding"), css.Header.Get("Content-Type"))
		}
		for _, hidden := range []string{"assets.go", "SHA256SUMS", "assets_test.go", "sub/style.css"} {
			if r := send(t, c, "GET", p.httpsURL+"/static/"+hidden, nil, nil); r.StatusCode != 404 {
				t.Errorf("/static/%s via nginx: %d, want 404", hidden, r.StatusCode)
			}
		}
		// A marker request the app does see, so its log is known to be current.
		send(t, c, "GET", p.httpsURL+"/healthz", nil, nil)
		// The app logs through a pipe: its line for /healthz (asked before
		// the static files) says the log has caught up with them.
		appRequestLine(t, p, "/healthz")
		for _, l := range appRequests(t, p.app.Logs.String()) {
			if path, _ := l["path"].(string); strings.HasPrefix(path, "/static/") {
				t.Errorf("the app served %s: nginx should have", path)
			}
		}
	})

	t.Run("the app sees the real client address, not a spoofed one", func(t *testing.T) {
		from := p.client("127.0.0.2")
		path := "/client-ip-probe-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		send(t, from, "GET", p.httpsURL+path, nil, map[string]string{"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"})
		if l := appRequestLine(t, p, path); l["client_ip"] != "127.0.0.2" {
			t.Errorf("app logged client_ip %v, want 127.0.0.2", l["client_ip"])
		}
		// Straight to the app from an untrusted peer, the header is ignored.
		direct := p.client("127.0.0.3")
		path += "-direct"
		send(t, direct, "GET", p.app.base+path, nil, map[string]string{"X-Real-IP": "203.0.113.9"})
		if l := appRequestLine(t, p, path); l["client_ip"] != "127.0.0.3" {
			t.Errorf("direct request: app logged client_ip %v, want the peer 127.0.0.3", l["client_ip"])
		}
	})

	t.Run("security headers on pages, fragments, static files and nginx's own errors", func(t *testing.T) {
		appCSP := send(t, c, "GET", p.app.base+"/healthz", nil, nil).Header.Get("Content-Security-Policy")
		big := strings.NewReader(strings.Repeat("x", 9000))
		for _, r := range []answer{
			send(t, c, "GET", p.httpsURL+"/", nil, nil),
			send(t, c, "GET", p.httpsURL+"/count", nil, nil),
			send(t, c, "GET", p.httpsURL+"/static/"+assets.HTMX, nil, nil),
			send(t, c, "GET", p.httpsURL+"/nope", nil, nil),
			send(t, c, "POST", p.httpsURL+"/hit", big, nil),
		} {
			where := r.Request.Method + " " + r.Request.URL.Path
			if csp := r.Header.Values("Content-Security-Policy"); len(csp) != 1 || csp[0] != appCSP {
				t.Errorf("%s: CSP %q, want exactly the app's %q", where, csp, appCSP)
			}
			for _, h := range []string{"Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
				if len(r.Header.Values(h)) != 1 {
					t.Errorf("%s: %s %q, want it once", where, h, r.Header.Values(h))
				}
			}
			if s := r.Header.Get("Server"); s != "nginx" {
				t.Errorf("%s: Server %q, want a bare nginx (server_tokens off)", where, s)
			}
		}
	})

	t.Run("the embed may be framed by the owner's origins, nothing else", func(t *testing.T) {
		testdb.Exec(t, p.dbURL, `insert into counters (name) values ('framed')`)
		embed := send(t, c, "GET", p.httpsURL+"/c/framed/embed", nil, nil)
		if embed.StatusCode != 200 {
			t.Fatalf("embed via nginx: %d\n%s", embed.StatusCode, embed.body)
		}
		if csp := embed.Header.Values("Content-Security-Policy"); len(csp) != 1 || !strings.Contains(csp[0], "frame-ancestors 'self' https://blog.example.com;") && !strings.HasSuffix(csp[0], "frame-ancestors 'self' https://blog.example.com") {
			t.Errorf("embed via nginx: CSP %q, want the app's, with the owner's origin", csp)
		}
		if xfo := embed.Header.Values("X-Frame-Options"); len(xfo) != 0 {
			t.Errorf("embed via nginx: X-Frame-Options %q, want none", xfo)
		}
		page := send(t, c, "GET", p.httpsURL+"/c/framed", nil, nil)
		if xfo := page.Header.Values("X-Frame-Options"); len(xfo) != 1 || xfo[0] != "DENY" {
			t.Errorf("counter page via nginx: X-Frame-Options %q, want DENY once", xfo)
		}
	})

	t.Run("a large body gets 413 and changes nothing", func(t *testing.T) {
		before := testdb.Hits(t, p.dbURL, "main")
		r := send(t, c, "POST", p.httpsURL+"/hit", strings.NewReader(strings.Repeat("x", 9000)),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.StatusCode != 413 {
			t.Fatalf("large POST via nginx: %d, want 413", r.StatusCode)
		}
		if got := testdb.Hits(t, p.dbURL, "main"); got != before {
			t.Fatalf("count changed from %d to %d", before, got)
		}
	})

	t.Run("a flood of page views gets 429, and every view served counts once", func(t *testing.T) {
		flood := p.client("127.0.0.9")
		before := testdb.Hits(t, p.dbURL, "main")
		var ok, limited int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 60 {
			wg.Go(func() {
				r := send(t, flood, "GET", p.httpsURL+"/", nil, map[string]string{"User-Agent": testkit.BrowserUA})
				mu.Lock()
				defer mu.Unlock()
				switch r.StatusCode {
				case 200:
					ok++
				case 429:
					limited++
				default:
					t.Errorf("status %d", r.StatusCode)
				}
			})
		}
		wg.Wait()
		if limited == 0 {
			t.Fatalf("60 simultaneous views, none limited (%d served)", ok)
		}
		if got := testdb.Hits(t, p.dbURL, "main"); got != before+ok {
			t.Fatalf("database went from %d to %d with %d views served", before, got, ok)
		}
	})

	// The 429 fragment polls the counter that was clicked, and from the
	// counter's own page what that page polls (its click and poll carry
	// the chart): both read off the page, as the app renders it.
	testdb.Exec(t, p.dbURL, `insert into counters (name) values ('blog')`)
	page := send(t, c, "GET", p.httpsURL+"/c/blog?counted", nil, nil).body
	pageHit := regexp.MustCompile(`<form[^>]* hx-post="([^"]+)"`).FindStringSubmatch(page)
	pagePoll := regexp.MustCompile(`<p id="counter"[^>]* hx-get="([^"]+)"`).FindStringSubmatch(page)
	if pageHit == nil || pagePoll == nil || !strings.HasPrefix(pageHit[1], "/c/blog/hit?") {
		t.Fatalf("the counter page's +1 and poll: %q %q\n%s", pageHit, pagePoll, page)
	}
	for i, tt := range []struct{ counter, hit, poll string }{
		{"main", "/hit", `hx-get="/count"`},
		{"blog", "/c/blog/hit", `hx-get="/c/blog/count"`},
		{"blog's page", pageHit[1], `hx-get="` + pagePoll[1] + `"`},
	} {
		t.Run("a flood of clicks on "+tt.counter+" gets 429, and every accepted click counts once", func(t *testing.T) {
			flood := p.client(fmt.Sprintf("127.0.0.%d", 4+i))
			counter, _, _ := strings.Cut(tt.counter, "'")
			before := testdb.Hits(t, p.dbURL, counter)
			var ok, limited int64
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					r := send(t, flood, "POST", p.httpsURL+tt.hit, nil, map[string]string{"HX-Request": "true"})
					mu.Lock()
					defer mu.Unlock()
					switch r.StatusCode {
					case 200:
						ok++
					case 429:
						limited++
						if !strings.Contains(r.body, "Too many clicks") || !strings.Contains(r.body, `id="counter"`) || !strings.Contains(r.body, tt.poll) {
							t.Errorf("429 body is not the counter fragment (%s) with a message:\n%s", tt.poll, r.body)
						}
					default:
						t.Errorf("status %d:\n%s", r.StatusCode, r.body)
					}
				})
			}
			wg.Wait()
			if limited == 0 {
				t.Fatalf("40 simultaneous clicks, none limited (%d accepted)", ok)
			}
			if got := testdb.Hits(t, p.dbURL, counter); got != before+ok {
				t.Fatalf("database went from %d to %d with %d accepted clicks", before, got, ok)
			}
			t.Logf("40 simultaneous clicks: %d accepted, %d limited", ok, limited)
		})
	}

	t.Run("HTTP redirects to HTTPS but serves ACME challenges", func(t *testing.T) {
		r := send(t, c, "GET", p.httpURL+"/some/page?x=1", nil, map[string]string{})
		if r.StatusCode != 301 || r.Header.Get("Location") != "https://127.0.0.1/some/page?x=1" {
			t.Fatalf("HTTP: %d Location %q, want 301 to https://127.0.0.1/some/page?x=1", r.StatusCode, r.Header.Get("Location"))
		}
		dir := filepath.Join(p.webrootDir, ".well-known", "acme-challenge")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tok3n"), []byte("tok3n.key"), 0o644); err != nil {
			t.Fatal(err)
		}
		r = send(t, c, "GET", p.httpURL+"/.well-known/acme-challenge/tok3n", nil, nil)
		if r.StatusCode != 200 || r.body != "tok3n.key" {
			t.Fatalf("ACME challenge over HTTP: %d %q", r.StatusCode, r.body)
		}
	})

	t.Run("HTTP/2 over TLS, and IPv6 as well as IPv4", func(t *testing.T) {
		h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: p.ca, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}}
		v6 := strings.Replace(p.httpsURL, "127.0.0.1", "[::1]", 1)
		for _, base := range []string{p.httpsURL, v6} {
			r := send(t, h2, "GET", base+"/", nil, nil)
			if r.StatusCode != 200 || r.ProtoMajor != 2 || countOf(t, r.body) < 1 {
				t.Errorf("GET %s/: %d over %s, want 200 over HTTP/2 with the count", base, r.StatusCode, r.Proto)
			}
		}
		plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r := send(t, plain, "GET", strings.Replace(p.httpURL, "127.0.0.1", "[::1]", 1)+"/x", nil, nil)
		if r.StatusCode != 301 {
			t.Errorf("HTTP on [::1]: %d, want the 301 to HTTPS", r.StatusCode)
		}
	})

	t.Run("TLS 1.2 and 1.3 only, with HSTS", func(t *testing.T) {
		r := send(t, c, "GET", p.httpsURL+"/healthz", nil, nil)
		if r.TLS == nil || r.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("not TLS ≥ 1.2: %+v", r.TLS)
		}
		if h := r.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
			t.Errorf("HSTS %q", h)
		}
		old := &tls.Config{RootCAs: p.ca, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := (&tls.Dialer{Config: old}).DialContext(ctx, "tcp", strings.TrimPrefix(p.httpsURL, "https://"))
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
}

// The compose deployment's upstream file (web on Docker's DNS, resolved per
// request) is valid for Debian's nginx too: it loads and serves its own
// answers. Reaching web is the deployment test's part (deploy_test.go).
func TestNginxComposeUpstreamLoads(t *testing.T) {
	srv, err := nginx.Start(nginx.Options{
		Conf:     "nginx.conf",
		Upstream: "deploy/nginx-upstream-compose.conf",
		Assets:   "assets",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA}}}
	resp, err := c.Get(srv.HTTPSURL + "/static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a static file through nginx with the compose upstream file: %d", resp.StatusCode)
	}
}

// Under systemd nginx's stdout is the journal's socket, which a path like
// /dev/stdout cannot open: nginx.conf must start that way (it
// did not, and nginx stayed down after a reboot).
func TestNginxStartsWithJournalSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: nginx.conf's own log paths are under /var/log/nginx")
	}
	srv, err := nginx.Start(nginx.Options{
		Conf:     "nginx.conf",
		Upstream: "deploy/nginx-upstream-local.conf",
		Assets:   "assets",
		// The production log path, not the test's.
		Replace: map[string]string{"access_log /var/log/nginx/access.log;": "access_log /var/log/nginx/access.log;"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	journal, peer := os.NewFile(uintptr(fds[0]), "journal"), os.NewFile(uintptr(fds[1]), "journal-peer")
	defer journal.Close()
	defer peer.Close()
	bin, _ := nginx.Binary()
	cmd := exec.Command(bin, "-t", "-c", srv.ConfPath)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = journal, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nginx -t with its stdout on a socket, as under systemd: %v\n%s", err, stderr.String())
	}
}

// nginx's 429 answer to a flood of clicks is the counter fragment the app
// renders, with nginx's message, polling what was clicked at the default
// interval: written out in nginx.conf (nginx cannot render templ), and
// held here to the real thing, so the copy cannot drift.
func TestNginx429IsTheCounterFragment(t *testing.T) {
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*return 429 '(.*)\\n';$`).FindSubmatch(conf)
	if m == nil {
		t.Fatal("nginx.conf has no `return 429 '…\\n';`")
	}
	var want bytes.Buffer
	err = views.CounterFragment(views.Counter{
		Problem:   "Too many clicks: slow down a moment.",
		Poll:      "$counter_poll", // nginx's variable: the clicked counter's poll
		PollEvery: web.DefaultPollInterval,
	}).Render(context.Background(), &want)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m[1]); got != want.String() {
		t.Errorf("nginx.conf's 429 body:\n%s\nthe app's fragment:\n%s", got, want.String())
	}
}

// appRequestLine waits for the app's request log line for path: the app
// is a process of its own, whose log reaches the test through a pipe,
// after the answer may have.
func appRequestLine(t *testing.T, p *proxied, path string) map[string]any {
	t.Helper()
	var line map[string]any
	testkit.Eventually(t, 10*time.Second, "the app's log line for "+path, func() (bool, string) {
		for _, l := range appRequests(t, p.app.Logs.String()) {
			if l["path"] == path {
				line = l
				return true, ""
			}
		}
		return false, p.app.Logs.String()
	})
	return line
}
