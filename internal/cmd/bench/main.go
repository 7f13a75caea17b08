// Command bench measures the real binary on a real PostgreSQL and prints one
// table from one run: `make bench`.
//
// It starts bin/hitcounter (on 127.0.0.1, port chosen by the kernel) on a
// fresh database of the server named by TEST_DATABASE_URL, drives it with a
// small HTTP/1.1 load generator over keep-alive connections, and reads the
// counter straight from the database before and after every run that
// counts, so each click run shows that the count moved by exactly the
// acknowledged clicks. Traffic goes only to loopback, each run is bounded in
// time, and the figures are printed, never asserted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/nginx"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/hitcounter", "the server binary")
	dur := flag.Duration("duration", 3*time.Second, "length of each run")
	profile := flag.String("cpu-profile", "", "also profile the server under 64 connections of clicks into this file, and print its top functions")
	baseline := flag.String("baseline", "", "another build of the server (make bench BASELINE=rev) whose clicks are measured in turns with this one's")
	counters := flag.Int("memory-counters", 100_000, "how many counters the memory figures are taken with")
	memoryOnly := flag.Bool("memory-only", false, "only the memory figures")
	flag.Parse()
	server := os.Getenv("TEST_DATABASE_URL")
	if server == "" {
		return errors.New("TEST_DATABASE_URL is not set: run `make bench`, which starts a PostgreSQL")
	}
	b := &bench{ctx: context.Background(), server: server, bin: *bin, dur: *dur}
	fmt.Printf("machine: %d cores, %s; the load generator, the server, nginx and PostgreSQL share them\n", runtime.NumCPU(), cpuModel())
	if *memoryOnly {
		return b.memory(*counters)
	}
	fmt.Printf("each run: %s of HTTP/1.1 keep-alive requests on loopback; PostgreSQL with fsync and synchronous_commit on\n\n", *dur)

	// Coalesced (the default), straight to the app.
	dbURL, err := b.database()
	if err != nil {
		return err
	}
	app, err := startApp(b.bin, dbURL, true)
	if err != nil {
		return err
	}
	direct := target{addr: app.Addr}
	b.measure("GET /healthz (the ceiling)", direct, get("/healthz", ""), 64, "")
	for _, conns := range []int{1, 64, 256} {
		b.measure(fmt.Sprintf("POST /hit, %d conns", conns), direct, post("/hit"), conns, dbURL)
	}
	b.measure("GET /count (poll)", direct, get("/count", ""), 64, "")
	etag, err := app.etag()
	if err != nil {
		return err
	}
	b.measure("GET /count, unchanged (304)", direct, get("/count", etag), 64, "")
	b.measure("GET / (page view, counts)", direct, get("/", ""), 64, dbURL)

	// The same through nginx over TLS, then two instances behind it.
	var rssB int64
	if _, err := nginx.Binary(); err != nil {
		fmt.Printf("%v: the rows through nginx are left out\n\n", err)
	} else {
		via, stop, err := b.nginx(app.Addr)
		if err != nil {
			return err
		}
		b.measure("nginx: GET /healthz", via, get("/healthz", ""), 64, "")
		b.measure("nginx: POST /hit, 64 conns", via, post("/hit"), 64, dbURL)
		b.measure("nginx: GET /count (poll)", via, get("/count", ""), 64, "")
		b.measure("nginx: GET / (page view)", via, get("/", ""), 64, dbURL)
		stop()

		second, err := startApp(b.bin, dbURL, true)
		if err != nil {
			return err
		}
		via, stop, err = b.nginx(app.Addr, second.Addr)
		if err != nil {
			return err
		}
		b.measure("nginx, 2 instances: POST /hit, 64 conns", via, post("/hit"), 64, dbURL)
		b.measure("nginx, 2 instances: GET /count (poll)", via, get("/count", ""), 64, "")
		stop()
		if rssB, err = second.stop(); err != nil {
			return err
		}
	}
	rss, err := app.stop()
	if err != nil {
		return err
	}

	// One write per hit, for comparison.
	dbURL, err = b.database()
	if err != nil {
		return err
	}
	app, err = startApp(b.bin, dbURL, false)
	if err != nil {
		return err
	}
	direct = target{addr: app.Addr}
	for _, conns := range []int{1, 64, 256} {
		b.measure(fmt.Sprintf("POST /hit, one per hit, %d conns", conns), direct, post("/hit"), conns, dbURL)
	}
	rssOff, err := app.stop()
	if err != nil {
		return err
	}

	// With Prometheus metrics on (METRICS_ADDR): what the per-request
	// hook and the store's observer cost. Measured beside an instance with
	// them off, in turns, on one database: runs far apart in time differ
	// more than that on this shared machine.
	dbURL, err = b.database()
	if err != nil {
		return err
	}
	off, err := startApp(b.bin, dbURL, true)
	if err != nil {
		return err
	}
	on, err := startApp(b.bin, dbURL, true, "-metrics-addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	for range 2 {
		b.measure("metrics off: POST /hit, 64 conns", target{addr: off.Addr}, post("/hit"), 64, dbURL)
		b.measure("metrics on: POST /hit, 64 conns", target{addr: on.Addr}, post("/hit"), 64, dbURL)
		b.measure("metrics off: GET /count (poll)", target{addr: off.Addr}, get("/count", ""), 64, "")
		b.measure("metrics on: GET /count (poll)", target{addr: on.Addr}, get("/count", ""), 64, "")
	}
	if _, err := off.stop(); err != nil {
		return err
	}
	if _, err := on.stop(); err != nil {
		return err
	}

	// Against a baseline build, in turns on one server: what a change of
	// the write path costs (make bench BASELINE=rev). Each build has a
	// database of its own, migrated by itself: a later migration may drop
	// what the baseline uses.
	if *baseline != "" {
		baseURL, err := b.database()
		if err != nil {
			return err
		}
		base, err := startApp(*baseline, baseURL, true)
		if err != nil {
			return err
		}
		thisURL, err := b.database()
		if err != nil {
			return err
		}
		this, err := startApp(b.bin, thisURL, true)
		if err != nil {
			return err
		}
		for range 3 {
			for _, conns := range []int{1, 64} {
				b.measure(fmt.Sprintf("baseline: POST /hit, %d conns", conns), target{addr: base.Addr}, post("/hit"), conns, baseURL)
				b.measure(fmt.Sprintf("this build: POST /hit, %d conns", conns), target{addr: this.Addr}, post("/hit"), conns, thisURL)
			}
		}
		if _, err := base.stop(); err != nil {
			return err
		}
		if _, err := this.stop(); err != nil {
			return err
		}
	}

	b.print()
	fmt.Printf("\nserver peak RSS (VmHWM): %.1f MB coalesced (every run above), %.1f MB the second instance, %.1f MB one per hit\n",
		float64(rss)/1e6, float64(rssB)/1e6, float64(rssOff)/1e6)
	ceiling := b.rate("GET /healthz (the ceiling)")
	fmt.Printf("clicks at 64 conns: %.2f× /healthz, %.1f× one per hit; polls %.2f× /healthz; page views %.2f× /healthz\n",
		b.rate("POST /hit, 64 conns")/ceiling, b.rate("POST /hit, 64 conns")/b.rate("POST /hit, one per hit, 64 conns"),
		b.rate("GET /count (poll)")/ceiling, b.rate("GET / (page view, counts)")/ceiling)
	fmt.Printf("metrics on: clicks %.2f×, polls %.2f× of the same with metrics off (their runs in turns)\n",
		b.rate("metrics on: POST /hit, 64 conns")/b.rate("metrics off: POST /hit, 64 conns"),
		b.rate("metrics on: GET /count (poll)")/b.rate("metrics off: GET /count (poll)"))
	if *baseline != "" {
		for _, conns := range []int{1, 64} {
			fmt.Printf("this build against the baseline (%s), clicks at %d conns, in turns: %.2f× (sums of three runs each)\n", *baseline, conns,
				b.rate(fmt.Sprintf("this build: POST /hit, %d conns", conns))/b.rate(fmt.Sprintf("baseline: POST /hit, %d conns", conns)))
		}
	}
	if err := b.memory(*counters); err != nil {
		return err
	}
	if *profile != "" {
		return b.profile(*profile)
	}
	return nil
}

type bench struct {
	ctx    context.Context
	server string
	bin    string
	dur    time.Duration
	rows   []row
}

type row struct {
	name string
	res  result
	note string
}

// measure runs one load and records it; with dbURL set, it also checks
// that the counter moved by exactly the acknowledged requests.
func (b *bench) measure(name string, to target, req []byte, conns int, dbURL string) {
	var before int64
	var err error
	if dbURL != "" {
		if before, err = hits(b.ctx, dbURL); err != nil {
			b.rows = append(b.rows, row{name, result{}, "read the counter: " + err.Error()})
			return
		}
	}
	r := load(to, req, conns, b.dur)
	note := ""
	if r.failed > 0 {
		note = fmt.Sprintf("%d failed (%s)", r.failed, r.firstErr)
	}
	if dbURL != "" {
		after, err := hits(b.ctx, dbURL)
		switch {
		case err != nil:
			note = "read the counter: " + err.Error()
		case after-before == r.ok && r.failed == 0:
			note = fmt.Sprintf("yes: Δ %d = %d acknowledged", after-before, r.ok)
		default:
			note = fmt.Sprintf("NO: Δ %d, %d acknowledged, %d failed (%s)", after-before, r.ok, r.failed, r.firstErr)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %-45s %9.0f req/s\n", name, r.rate())
	b.rows = append(b.rows, row{name, r, note})
}

// rate is the requests per second of the runs called name, all of them.
func (b *bench) rate(name string) float64 {
	var ok int64
	var elapsed time.Duration
	for _, r := range b.rows {
		if r.name == name {
			ok += int64(r.res.ok)
			elapsed += r.res.elapsed
		}
	}
	if elapsed == 0 {
		return 0
	}
	return float64(ok) / elapsed.Seconds()
}

func (b *bench) print() {
	ceiling := b.rate("GET /healthz (the ceiling)")
	fmt.Printf("| %-43s | %8s | %11s | %8s | %8s | %s |\n", "run", "req/s", "of /healthz", "p50", "p99", "counter Δ = acknowledged?")
	fmt.Printf("|%s|---:|---:|---:|---:|---|\n", strings.Repeat("-", 45))
	for _, r := range b.rows {
		fmt.Printf("| %-43s | %8.0f | %9.0f %% | %8s | %8s | %s |\n", r.name, r.res.rate(), 100*r.res.rate()/ceiling,
			r.res.quantile(0.50), r.res.quantile(0.99), r.note)
	}
}

func (b *bench) database() (string, error) { return createDatabase(b.ctx, b.server) }

// nginx starts the repository's nginx.conf in front of the given app
// instances, with the abuse limits lifted (this measures the stack, not
// the limits) and no access log.
func (b *bench) nginx(upstreams ...string) (target, func(), error) {
	srv, err := nginx.Start(nginx.Options{
		Conf:      "nginx.conf",
		Upstream:  "deploy/nginx-upstream-local.conf",
		Assets:    "assets",
		Upstreams: upstreams,
		Replace: map[string]string{
			"limit_req zone=hits burst=10 nodelay;":    "# limit_req: off for the benchmark",
			"limit_req zone=views burst=20 nodelay;":   "# limit_req: off for the benchmark",
			"limit_req zone=badges burst=200 nodelay;": "# limit_req: off for the benchmark",
			"limit_conn perip 32;":                     "# limit_conn: off for the benchmark",
			"access_log /var/log/nginx/access.log;":    "access_log off;",
		},
	})
	if err != nil {
		return target{}, nil, err
	}
	u, err := url.Parse(srv.HTTPSURL)
	if err != nil {
		srv.Stop()
		return target{}, nil, err
	}
	return target{addr: u.Host, tls: &tls.Config{RootCAs: srv.CA, ServerName: "localhost", MinVersion: tls.VersionTLS12}}, srv.Stop, nil
}

// profile runs clicks at 64 connections against a server that writes a CPU
// profile, and prints where its time went.
func (b *bench) profile(file string) error {
	dbURL, err := b.database()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	app, err := startApp(b.bin, dbURL, true, "-cpu-profile", abs)
	if err != nil {
		return err
	}
	before := cpuTimes(app.Cmd.Process.Pid)
	start := time.Now()
	r := load(target{addr: app.Addr}, post("/hit"), 64, b.dur)
	after := cpuTimes(app.Cmd.Process.Pid)
	wall := time.Since(start)
	if _, err := app.stop(); err != nil {
		return err
	}
	fmt.Printf("\nWhere the 2 cores went under %.0f clicks/s (64 conns), as CPU time over %s of wall time:\n", r.rate(), wall.Round(time.Millisecond))
	for _, k := range []string{"server", "PostgreSQL", "load generator", "other"} {
		fmt.Printf("  %-15s %6.2fs  (%3.0f %% of %d cores)\n", k, (after[k] - before[k]).Seconds(),
			100*(after[k]-before[k]).Seconds()/(wall.Seconds()*float64(runtime.NumCPU())), runtime.NumCPU())
	}
	fmt.Printf("\nCPU profile of the server in that run (%s), heaviest call paths first:\n", file)
	cmd := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", b.bin, abs)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// --- the server ---

// app is an instance of the server.
type app struct{ *testkit.Program }

func startApp(bin, dbURL string, coalesce bool, args ...string) (*app, error) {
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "COALESCE="+strconv.FormatBool(coalesce))
	p, err := testkit.Start(bin, env, os.Stderr, append([]string{"-migrate"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%w (build it with `make build`)", err)
	}
	return &app{p}, nil
}

// stop ends the server gracefully and returns its peak resident memory.
func (a *app) stop() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.Cmd.Process.Pid))
	var rss int64
	if err == nil {
		for l := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb * 1000
			}
		}
	}
	return rss, a.Stop(20 * time.Second)
}

// etag is the ETag of the current poll answer.
func (a *app) etag() (string, error) {
	c, err := target{addr: a.Addr}.dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(get("/count", "")); err != nil {
		return "", err
	}
	_, h, err := readResponse(bufio.NewReader(c))
	if err != nil {
		return "", err
	}
	if h.etag == "" {
		return "", errors.New("GET /count has no ETag")
	}
	return h.etag, nil
}

// cpuTimes is the CPU time (user + system) used so far by the server
// (pid), by PostgreSQL's processes, by this process (the load generator),
// and by everything else, from /proc.
func cpuTimes(pid int) map[string]time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	out := map[string]time.Duration{}
	self := os.Getpid()
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		// The first line sums every CPU: user nice system idle iowait irq softirq steal …
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		var busy int64
		for i, v := range f[1:] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
		out["other"] = time.Duration(busy) * tick
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime are fields 14 and 15.
		comm := string(b[bytes.IndexByte(b, '(')+1 : bytes.LastIndexByte(b, ')')])
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		used := time.Duration(ut+st) * tick
		switch {
		case p == pid:
			out["server"] += used
		case p == self:
			out["load generator"] += used
		case comm == "postgres":
			out["PostgreSQL"] += used
		default:
			continue
		}
		out["other"] -= used
	}
	return out
}

// --- the database ---

func createDatabase(ctx context.Context, server string) (string, error) {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(server), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "hc_bench_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "create database "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func hits(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "select hits from counters where name = 'main'").Scan(&n)
	return n, err
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the database"
	}
	return p.Redacted()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

// --- the load generator ---

// Requests carry a browser's User-Agent, as people's do: without one, a
// page view counts as a bot's, and the bot detector's work for a browser
// goes unmeasured.
const browserHeader = "User-Agent: " + testkit.BrowserUA + "\r\n"

func get(path, etag string) []byte {
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nHX-Request: true\r\n" + browserHeader
	if etag != "" {
		req += "If-None-Match: " + etag + "\r\n"
	}
	return []byte(req + "\r\n")
}

func post(path string) []byte {
	return []byte("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nHX-Request: true\r\n" + browserHeader + "Content-Length: 0\r\n\r\n")
}

type result struct {
	ok, failed int64
	firstErr   string
	elapsed    time.Duration
	latencies  []time.Duration
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) quantile(q float64) string {
	if len(r.latencies) == 0 {
		return "-"
	}
	d := r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
	return d.Round(10 * time.Microsecond).String()
}

// target is where load goes: an address, over TLS when tls is set.
type target struct {
	addr string
	tls  *tls.Config
}

func (t target) dial() (net.Conn, error) {
	c, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
	if err != nil || t.tls == nil {
		return c, err
	}
	tc := tls.Client(c, t.tls)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// load sends req over conns keep-alive connections for dur. Each
// connection finishes the request it has in flight when time is up, so
// every request sent is answered and counted: that is what makes the
// exactness check exact. 2xx and 304 are successes.
func load(to target, req []byte, conns int, dur time.Duration) result {
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(dur)
	for range conns {
		wg.Go(func() {
			var mine result
			defer func() {
				mu.Lock()
				all.ok += mine.ok
				all.failed += mine.failed
				if all.firstErr == "" {
					all.firstErr = mine.firstErr
				}
				all.latencies = append(all.latencies, mine.latencies...)
				mu.Unlock()
			}()
			fail := func(err error) {
				mine.failed++
				if mine.firstErr == "" {
					mine.firstErr = err.Error()
				}
			}
			c, err := to.dial()
			if err != nil {
				fail(err)
				return
			}
			defer func() { c.Close() }() // the last connection, after any redial
			r := bufio.NewReaderSize(c, 16<<10)
			for time.Now().Before(stop) {
				t0 := time.Now()
				_ = c.SetDeadline(t0.Add(30 * time.Second))
				if _, err := c.Write(req); err != nil {
					fail(err)
					return
				}
				status, h, err := readResponse(r)
				if err != nil {
					fail(err)
					return
				}
				if h.close { // e.g. nginx's keepalive_requests: go on on a new connection
					c.Close()
					if c, err = to.dial(); err != nil {
						fail(err)
						return
					}
					r.Reset(c)
				}
				mine.latencies = append(mine.latencies, time.Since(t0))
				if status/100 == 2 || status == 304 {
					mine.ok++
				} else {
					fail(fmt.Errorf("status %d", status))
				}
			}
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	slices.Sort(all.latencies)
	return all
}

type header struct {
	contentLength int
	chunked       bool
	close         bool // the server closes the connection after this answer
	etag          string
}

// readResponse reads one response and discards its body (Content-Length
// or chunked).
func readResponse(r *bufio.Reader) (int, header, error) {
	var h header
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, h, err
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, h, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, h, fmt.Errorf("bad status line %q", line)
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, h, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		switch strings.ToLower(string(k)) {
		case "content-length":
			h.contentLength, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		case "etag":
			h.etag = string(bytes.TrimSpace(v))
		case "connection":
			h.close = bytes.EqualFold(bytes.TrimSpace(v), []byte("close"))
		case "transfer-encoding":
			h.chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		}
	}
	if h.chunked {
		return status, h, discardChunks(r)
	}
	_, err = r.Discard(h.contentLength)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return status, h, err
}

func discardChunks(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if _, err := r.Discard(int(n) + 2); err != nil { // the data and its CRLF
			return err
		}
		if n == 0 {
			return nil // no trailers from these servers
		}
	}
}
