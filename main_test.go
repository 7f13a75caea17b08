package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// program is the whole program running in-process, as main would run it.
type program struct {
	base    string // http://127.0.0.1:PORT
	metrics string // http://127.0.0.1:PORT/metrics, with METRICS_ADDR set
	logs    *testkit.Buffer
	stop    context.CancelFunc // as SIGTERM
	exited  chan struct{}      // closed once run has returned err
	err     error
}

// launch runs the program on 127.0.0.1:0 and returns once it listens.
// The test may stop it and read its return with waitExit; it is stopped
// when the test ends in any case.
func launch(t testing.TB, env map[string]string, args ...string) *program {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	p := &program{logs: &testkit.Buffer{}, stop: cancel, exited: make(chan struct{})}
	go func() {
		p.err = run(ctx, append([]string{"hitcounter", "-addr", "127.0.0.1:0"}, args...), func(k string) string { return env[k] }, nil, stdoutW, p.logs)
		stdoutW.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("program logs:\n%s", p.logs.String())
		}
	})
	t.Cleanup(func() { // runs before the logs are shown, so they are whole
		p.stop()
		p.waitExit(t, 15*time.Second)
	})
	p.base, p.metrics = readListening(t, stdoutR, p)
	return p
}

// startRun is launch for a program that serves until the test ends, and
// must then stop cleanly.
func startRun(t testing.TB, env map[string]string, args ...string) *program {
	t.Helper()
	p := launch(t, env, args...)
	t.Cleanup(func() {
		p.stop()
		if err := p.waitExit(t, 15*time.Second); err != nil {
			t.Errorf("run returned %v after shutdown", err)
		}
	})
	return p
}

// waitExit waits up to within for run to return, and returns its error.
func (p *program) waitExit(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		t.Fatalf("run had not returned within %s", within)
		return nil
	}
}

// readListening reads the program's stdout until it says where it
// listens, and returns that base URL, and its metrics' URL if it said one
// first.
func readListening(t testing.TB, stdout io.Reader, p *program) (base, metrics string) {
	t.Helper()
	addr := make(chan testkit.Listening, 1)
	go func() {
		testkit.ReadListening(stdout, addr)
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			<-p.exited
			t.Fatalf("program ended before listening: %v", p.err)
		}
		return "http://" + a.Addr, a.Metrics
	case <-time.After(30 * time.Second):
		t.Fatal("program did not listen within 30s")
	}
	return "", ""
}

// waitHealthy polls /healthz until it answers 200, with a deadline.
func waitHealthy(t testing.TB, base string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "/healthz OK", func() (bool, string) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// get GETs url as a browser would.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, body := testkit.Do(t, &http.Client{Timeout: 10 * time.Second}, http.MethodGet, url, nil, map[string]string{"User-Agent": testkit.BrowserUA})
	return resp.StatusCode, body
}

// The whole program: configuration from the environment, migration at
// start, serving, graceful shutdown.
func TestRunServesMigratesAndShutsDown(t *testing.T) {
	dbURL := testdb.New(t) // empty: the program migrates it
	base := startRun(t, map[string]string{"DATABASE_URL": dbURL, "MIGRATE": "true", "LOG_FORMAT": "json"}).base
	waitHealthy(t, base)

	if status, body := get(t, base+"/readyz"); status != 200 {
		t.Fatalf("readyz %d %q after -migrate", status, body)
	}
	status, body := get(t, base+"/")
	if status != 200 || !strings.Contains(body, `<strong id="count">1</strong>`) {
		t.Fatalf("page: %d\n%s", status, body)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 1 {
		t.Fatalf("database has %d hits after one view", got)
	}
}

// The counters' settings reach the store and the handlers: auto-creation
// up to the limit, the embed's framing origins, the API token.
func TestRunCounterSettings(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	base := startRun(t, map[string]string{"DATABASE_URL": dbURL, "AUTO_CREATE": "true", "MAX_COUNTERS": "2",
		"EMBED_ORIGINS": "https://blog.example.com", "TIMEZONE": "Asia/Tokyo"}).base
	if status, body := get(t, base+"/c/fresh"); status != 200 || !strings.Contains(body, `<strong id="count">1</strong>`) {
		t.Fatalf("the first view of a new name: %d\n%s", status, body)
	}
	if status, _ := get(t, base+"/c/another"); status != 404 {
		t.Errorf("a third counter: %d, want 404 (MAX_COUNTERS=2)", status)
	}
	resp, err := http.Get(base + "/c/fresh/embed?count=0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://blog.example.com") {
		t.Errorf("embed CSP %q", csp)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	_, body := get(t, base+"/api/counters/fresh")
	if today := time.Now().In(tokyo).Format(time.DateOnly); !strings.Contains(body, `"day":"`+today+`"`) {
		t.Errorf("TIMEZONE=Asia/Tokyo: today is %s there, the API says %s", today, body)
	}
}

// The poll interval from the environment reaches the page; a flag wins
// over the environment.
func TestRunFlagsOverrideEnvironment(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	env := map[string]string{"DATABASE_URL": dbURL, "POLL_INTERVAL": "7s"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "every 7s"}, // the environment
		{[]string{"-poll-interval", "5s"}, "every 5s"}, // a flag wins
	} {
		base := startRun(t, env, tt.args...).base
		_, body := get(t, base+"/count")
		if !strings.Contains(body, `hx-trigger="`+tt.want+`"`) {
			t.Errorf("with POLL_INTERVAL=7s and flags %q: want %s in\n%s", tt.args, tt.want, body)
		}
	}
}

// Every setting is checked before anything else happens: the database
// URL points nowhere, so a setting checked only after connecting would
// fail with the connection's error instead of its own.
func TestRunRejectsBadConfiguration(t *testing.T) {
	good := "postgres://u:secret@127.0.0.1:1/x"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no database", map[string]string{}, nil, "set DATABASE_URL"},
		{"bad retries", map[string]string{"DATABASE_URL": good, "DB_RETRIES": "lots"}, nil, "$DB_RETRIES"},
		{"negative retries", map[string]string{"DATABASE_URL": good, "DB_RETRIES": "-1"}, nil, "retries must be ≥ 0"},
		{"factor below 1", map[string]string{"DATABASE_URL": good}, []string{"-db-retry-factor", "0.5"}, "backoff factor"},
		{"jitter above 1", map[string]string{"DATABASE_URL": good, "DB_RETRY_JITTER": "2"}, nil, "jitter"},
		{"bad duration", map[string]string{"DATABASE_URL": good, "POLL_INTERVAL": "often"}, nil, "$POLL_INTERVAL"},
		{"batch of none", map[string]string{"DATABASE_URL": good, "BATCH_MAX": "0"}, nil, "batch size must be ≥ 1"},
		{"queue below batch", map[string]string{"DATABASE_URL": good}, []string{"-batch-max", "100", "-queue-max", "10"}, "queue bound"},
		{"coalesce not a boolean", map[string]string{"DATABASE_URL": good, "COALESCE": "maybe"}, nil, "$COALESCE"},
		{"bad log level", map[string]string{"DATABASE_URL": good, "LOG_LEVEL": "loud"}, nil, "log level"},
		{"bad database URL", map[string]string{"DATABASE_URL": "postgres://u:secret@[::1"}, nil, "invalid database URL"},
		{"bad trusted proxy", map[string]string{"DATABASE_URL": good, "CLIENT_IP_HEADER": "X-Real-IP", "TRUSTED_PROXIES": "10.0.0.0/99"}, nil, "trusted proxy"},
		{"client IP header from anyone", map[string]string{"DATABASE_URL": good, "CLIENT_IP_HEADER": "X-Real-IP"}, nil, "TRUSTED_PROXIES is empty"},
		{"bad timezone", map[string]string{"DATABASE_URL": good, "TIMEZONE": "Mars/Olympus"}, nil, "timezone"},
		{"local timezone", map[string]string{"DATABASE_URL": good, "TIMEZONE": "Local"}, nil, "timezone"},
		{"bad not-counted network", map[string]string{"DATABASE_URL": good, "NOT_COUNTED": "192.0.2.0/24, office"}, nil, "not-counted network \"office\""},
		{"negative burst limit", map[string]string{"DATABASE_URL": good, "BURST_LIMIT": "-1"}, nil, "burst limit"},
		{"embed origin with a path", map[string]string{"DATABASE_URL": good, "EMBED_ORIGINS": "https://blog.example.com/posts"}, nil, "embed origin"},
		{"embed origin smuggling a directive", map[string]string{"DATABASE_URL": good, "EMBED_ORIGINS": "https://a.example; script-src *"}, nil, "embed origin"},
		{"embed origin without a scheme", map[string]string{"DATABASE_URL": good, "EMBED_ORIGINS": "blog.example.com"}, nil, "embed origin"},
		{"no counters allowed", map[string]string{"DATABASE_URL": good, "MAX_COUNTERS": "0"}, nil, "counter limit"},
		{"auto-create not a boolean", map[string]string{"DATABASE_URL": good, "AUTO_CREATE": "sure"}, nil, "$AUTO_CREATE"},
		{"stray argument", map[string]string{"DATABASE_URL": good}, []string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"hitcounter", "-addr", "127.0.0.1:0"}, tt.args...)
			err := run(ctx, args, func(k string) string { return tt.env[k] }, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run error %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// The database may come after the app: the app serves anyway (health
// yes, ready no, counts 503) and works as soon as the database answers,
// with no restart.
func TestRunStartsWithoutTheDatabase(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	proxy.SetDown(true)
	base := startRun(t, map[string]string{"DATABASE_URL": proxied, "DB_RETRIES": "1", "DB_RETRY_INITIAL_DELAY": "1ms"}).base
	if status, _ := get(t, base+"/healthz"); status != 200 {
		t.Errorf("healthz %d without the database, want 200", status)
	}
	if status, _ := get(t, base+"/readyz"); status != 503 {
		t.Errorf("readyz %d without the database, want 503", status)
	}
	if status, body := get(t, base+"/"); status != 503 || !strings.Contains(body, "Counter unavailable, retrying…") {
		t.Errorf("the page without the database: %d\n%s", status, body)
	}
	proxy.SetDown(false)
	testkit.Eventually(t, 20*time.Second, "the page with its count once the database came", func() (bool, string) {
		status, body := get(t, base+"/")
		return status == 200 && strings.Contains(body, `<strong id="count">1</strong>`), fmt.Sprintf("%d: %s", status, body)
	})
	if status, _ := get(t, base+"/readyz"); status != 200 {
		t.Errorf("readyz %d once the database answers", status)
	}
}

// -migrate waits for a database that is not up yet, bounded by
// MIGRATE_WAIT, and then fails saying so.
func TestRunMigrateWaitsThenFails(t *testing.T) {
	dead := "postgres://u:p@" + testkit.RefusedAddr(t) + "/x?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := map[string]string{"DATABASE_URL": dead, "DB_RETRIES": "1", "DB_RETRY_INITIAL_DELAY": "1ms", "MIGRATE_WAIT": "1500ms"}
	start := time.Now()
	err := run(ctx, []string{"hitcounter", "-addr", "127.0.0.1:0", "-migrate"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	if !errors.Is(err, db.ErrUnavailable) || !strings.Contains(err.Error(), "1.5s") {
		t.Fatalf("run error %v, want one wrapping db.ErrUnavailable that names the wait", err)
	}
	if took := time.Since(start); took < 1500*time.Millisecond || took > 10*time.Second {
		t.Errorf("it gave up after %s, want after the 1.5s wait", took)
	}
}

// SIGTERM with the database frozen (a stopped server that holds its
// connections): readiness turns 503 while draining, and the whole
// shutdown, the pool included, ends within SHUTDOWN_TIMEOUT.
func TestRunStopsOnTimeWithAFrozenDatabase(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	p := launch(t, map[string]string{"DATABASE_URL": proxied, "SHUTDOWN_TIMEOUT": "2s", "SHUTDOWN_DRAIN": "500ms", "REQUEST_TIMEOUT": "1s"})
	if status, _ := get(t, p.base+"/"); status != 200 {
		t.Fatalf("the page: %d", status)
	}
	proxy.Freeze(true) // everything sent to the database now goes unanswered
	defer proxy.Freeze(false)
	go func() { _, _ = http.Post(p.base+"/hit", "", nil) }() // a request stuck on the database
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	p.stop()
	time.Sleep(200 * time.Millisecond)
	if status, body := get(t, p.base+"/readyz"); status != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("readyz while draining: %d %q, want 503 shutting down", status, body)
	}

	p.waitExit(t, 15*time.Second)
	if took := time.Since(start); took > 2*time.Second+500*time.Millisecond {
		t.Errorf("shutdown took %s, want at most SHUTDOWN_TIMEOUT (2s) and a little", took)
	}
}

// A listener that fails while serving stops the program as SIGTERM does:
// the app's server shuts down gracefully and its port closes, nothing is
// left serving, and run returns why.
func TestRunShutsDownWhenTheMetricsListenerFails(t *testing.T) {
	p := launch(t, map[string]string{"DATABASE_URL": testdb.NewMigrated(t), "METRICS_ADDR": "127.0.0.1:0", "SHUTDOWN_DRAIN": "0s"})
	waitHealthy(t, p.base)
	metrics, err := url.Parse(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	breakListener(t, metrics.Host)

	err = p.waitExit(t, 15*time.Second)
	if err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Errorf("run returned %v, want the metrics listener's failure", err)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.base, "http://"), 5*time.Second); err == nil {
		c.Close()
		t.Error("the app's port still accepts connections after run returned")
	}
	if n := serving(); n > 0 {
		t.Errorf("%d of run's servers still in Serve after it returned", n)
	}
	if !strings.Contains(p.logs.String(), "msg=stopped") {
		t.Error("run returned without its graceful shutdown: no \"stopped\" in the logs")
	}
}

// breakListener shuts down, under the program, its listening socket on
// addr, found among the process's files: its Accept then fails for good
// (EINVAL), a real failure that needs no seam in the program.
func breakListener(t *testing.T, addr string) {
	t.Helper()
	want, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to find the listener in: %v", err)
	}
	for _, f := range fds {
		fd, err := strconv.Atoi(f.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if in, ok := sa.(*syscall.SockaddrInet4); err != nil || !ok || netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port)) != want {
			continue
		}
		// The connections it accepted have its address too.
		if listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || listening != 1 {
			continue
		}
		if err := syscall.Shutdown(fd, syscall.SHUT_RD); err != nil {
			t.Fatalf("shut the listener on %s down: %v", addr, err)
		}
		return
	}
	t.Fatalf("no listening socket on %s among the process's files", addr)
}

// serving counts the goroutines of the program's servers still in Serve:
// those whose stack has a frame of package main.
func serving() int {
	var stacks strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2) // as a panic prints them
	count := 0
	for g := range strings.SplitSeq(stacks.String(), "\n\n") {
		if strings.Contains(g, "net/http.(*Server).Serve(") && strings.Contains(g, "github.com/hitcounter/hitcounter.") {
			count++
		}
	}
	return count
}

// A port in use fails the start before -migrate changes the database:
// both listeners are bound first, so an instance started on a taken port
// leaves the schema as it found it.
func TestRunBindsBeforeMigrating(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		listener string
		args     []string
	}{
		{"app", []string{"-addr", taken.Addr().String()}},
		{"metrics", []string{"-addr", "127.0.0.1:0", "-metrics-addr", taken.Addr().String()}},
	} {
		t.Run(tt.listener, func(t *testing.T) {
			dbURL := testdb.New(t) // empty: -migrate would create every table
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"hitcounter", "-migrate"}, tt.args...), func(k string) string {
				return map[string]string{"DATABASE_URL": dbURL}[k]
			}, nil, io.Discard, io.Discard)
			var tables int
			if err := testdb.Connect(t, dbURL).QueryRow(ctx, "select count(*) from pg_tables where schemaname = 'public'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("%d tables after a start that failed: migrated before binding", tables)
			}
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), tt.listener+": ") {
				t.Errorf("run error %v, want the %s listener's address in use", err, tt.listener)
			}
		})
	}
}

// -probe is the container health check: exit status from one GET.
func TestRunProbe(t *testing.T) {
	base := startRun(t, map[string]string{"DATABASE_URL": testdb.NewMigrated(t)}).base
	ctx := context.Background()
	if err := run(ctx, []string{"hitcounter", "-probe", base + "/readyz"}, func(string) string { return "" }, nil, io.Discard, io.Discard); err != nil {
		t.Fatalf("probe of a ready server: %v", err)
	}
	err := run(ctx, []string{"hitcounter", "-probe", base + "/nope"}, func(string) string { return "" }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("probe of a 404: %v, want an error naming the status", err)
	}
}

// The configuration table of docs/configuration.md is the program's: every variable with
// its flag and default, nothing more, nothing less.
func TestConfigurationTableIsTheProgram(t *testing.T) {
	table, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| `(-[a-z-]+)` \\| ([^|]+) \\|")
	documented := map[string][2]string{} // env → flag, default
	for _, m := range row.FindAllStringSubmatch(string(table), -1) {
		documented[m[1]] = [2]string{m[2], strings.Trim(strings.TrimSpace(m[3]), "`")}
	}

	c := config{store: db.DefaultConfig()}
	fs := flag.NewFlagSet("hitcounter", flag.ContinueOnError)
	envOf := flags(&c, fs)
	for name, env := range envOf {
		doc, ok := documented[env]
		if !ok {
			t.Errorf("docs/configuration.md lacks %s (-%s)", env, name)
			continue
		}
		delete(documented, env)
		want := fs.Lookup(name).DefValue
		if want == "" {
			want = "(empty)"
			if name == "database-url" {
				want = "(required)"
			}
		}
		if doc[0] != "-"+name || doc[1] != want {
			t.Errorf("docs/configuration.md documents %s as %s, default %q; the program has -%s, default %q", env, doc[0], doc[1], name, want)
		}
	}
	for env := range documented {
		t.Errorf("docs/configuration.md documents %s, which the program does not read", env)
	}
}

// A client holding far more idle keep-alive connections than the limit
// cannot starve others: over MAX_CONNS the longest idle are closed, and
// other clients keep being served. The metrics count the closed ones.
func TestRunSurvivesAConnectionFlood(t *testing.T) {
	const limit, flood = 50, 400
	app := startRun(t, map[string]string{"DATABASE_URL": testdb.NewMigrated(t), "MAX_CONNS": strconv.Itoa(limit), "METRICS_ADDR": "127.0.0.1:0"})
	base := app.base
	addr := strings.TrimPrefix(base, "http://")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	served, others := 0, 0
	for i := range flood {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
		// One request, then idle with keep-alive, as a browser leaves it.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			continue // closed to make room: fine
		}
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			resp.Body.Close()
			served++
		}
		if i%50 == 0 { // meanwhile, someone else
			others++
			start := time.Now()
			if status, _ := get(t, base+"/healthz"); status != 200 || time.Since(start) > 2*time.Second {
				t.Fatalf("another client during the flood: %d after %s", status, time.Since(start))
			}
		}
	}
	if served == 0 {
		t.Fatal("no flood connection was served: the test flooded nothing")
	}
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++ // still open, idle
		}
	}
	if open > limit {
		t.Errorf("%d flood connections still open, want at most MAX_CONNS = %d", open, limit)
	}
	// Every connection served was accepted, with at most the limit open at
	// once: the others were closed, by the guard but for those the other
	// client may have closed itself.
	shed := counterValue(scrape(t, app.metrics), "hitcounter_http_conns_shed_total", nil)
	if want := served - limit - others; shed < float64(want) {
		t.Errorf("%v connections shed by the metrics, want at least %d", shed, want)
	}
	t.Logf("%d flood connections served, %d still open, %v shed (MAX_CONNS %d)", served, open, shed, limit)
}

// -print-config checks the settings as a start does, prints every one as
// NAME=value without connecting anywhere, and hides the secrets.
func TestPrintConfig(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL": "postgres://app:s3cret@127.0.0.1:1/hits",
		"API_TOKEN":    "t0ken",
		"TIMEZONE":     "Europe/Berlin",
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"hitcounter", "-print-config"}, func(k string) string { return env[k] }, nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	printed := map[string]string{}
	for line := range strings.Lines(out.String()) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("not NAME=value: %q", line)
		}
		printed[k] = v
	}
	c := config{}
	envOf := flags(&c, flag.NewFlagSet("hitcounter", flag.ContinueOnError))
	if len(envOf) < 10 {
		t.Fatalf("%d settings", len(envOf))
	}
	for _, name := range envOf {
		if _, ok := printed[name]; !ok {
			t.Errorf("-print-config lacks %s", name)
		}
	}
	if printed["DATABASE_URL"] != "postgres://app:xxxxx@127.0.0.1:1/hits" || printed["API_TOKEN"] != "xxxxx" || printed["TIMEZONE"] != "Europe/Berlin" {
		t.Errorf("printed %v", printed)
	}
	if strings.Contains(out.String(), "s3cret") || strings.Contains(out.String(), "t0ken") {
		t.Errorf("a secret is printed:\n%s", out.String())
	}
	// A bad setting fails as a start would, printing nothing.
	env["TIMEZONE"] = "Mars/Olympus"
	out.Reset()
	if err := run(context.Background(), []string{"hitcounter", "-print-config"}, func(k string) string { return env[k] }, nil, &out, io.Discard); err == nil || out.Len() != 0 {
		t.Errorf("a bad timezone: %v, printed %q", err, out.String())
	}
}
