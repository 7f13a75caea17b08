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
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
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
	flag.Parse()
	server := os.Getenv("TEST_DATABASE_URL")
	if server == "" {
		return errors.New("TEST_DATABASE_URL is not set: run `make bench`, which starts a PostgreSQL")
	}
	ctx := context.Background()
	fmt.Printf("machine: %d cores (GOMAXPROCS %d), %s; load generator and server share them\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel())
	fmt.Printf("each run: %s, HTTP/1.1 keep-alive, straight to the app on loopback; PostgreSQL with fsync and synchronous_commit on\n\n", *dur)

	type row struct {
		name string
		res  result
		note string
	}
	var rows []row
	var peak []string
	for _, coalesce := range []bool{true, false} {
		dbURL, err := createDatabase(ctx, server)
		if err != nil {
			return err
		}
		app, err := startApp(*bin, dbURL, coalesce)
		if err != nil {
			return err
		}
		mode := map[bool]string{true: "coalesced", false: "one per hit"}[coalesce]
		if coalesce {
			r := load(app.addr, get("/healthz", ""), 64, *dur)
			rows = append(rows, row{"GET /healthz (ceiling)", r, ""})
		}
		for _, conns := range []int{1, 64, 256} {
			before, err := hits(ctx, dbURL)
			if err != nil {
				return err
			}
			r := load(app.addr, post("/hit"), conns, *dur)
			after, err := hits(ctx, dbURL)
			if err != nil {
				return err
			}
			rows = append(rows, row{fmt.Sprintf("POST /hit, %s, %d conns", mode, conns), r, exactness(r, after-before)})
		}
		if coalesce {
			r := load(app.addr, get("/count", ""), 64, *dur)
			rows = append(rows, row{"GET /count (poll)", r, ""})
			etag, err := app.etag()
			if err != nil {
				return err
			}
			r = load(app.addr, get("/count", etag), 64, *dur)
			rows = append(rows, row{"GET /count, unchanged (304)", r, ""})
			before, err := hits(ctx, dbURL)
			if err != nil {
				return err
			}
			r = load(app.addr, get("/", ""), 64, *dur)
			after, err := hits(ctx, dbURL)
			if err != nil {
				return err
			}
			rows = append(rows, row{"GET / (page view, counts)", r, exactness(r, after-before)})
		}
		rss, err := app.stop()
		if err != nil {
			return err
		}
		peak = append(peak, fmt.Sprintf("%s: %.1f MB", mode, float64(rss)/1e6))
	}

	ceiling := rows[0].res.rate()
	fmt.Printf("| %-38s | %9s | %7s | %8s | %8s | %s\n", "run", "req/s", "of /healthz", "p50", "p99", "exact?")
	fmt.Printf("|%s|%s|%s|%s|%s|---\n", strings.Repeat("-", 40), strings.Repeat("-", 11), strings.Repeat("-", 13), strings.Repeat("-", 10), strings.Repeat("-", 10))
	for _, r := range rows {
		fmt.Printf("| %-38s | %9.0f | %10.0f %% | %8s | %8s | %s\n", r.name, r.res.rate(), 100*r.res.rate()/ceiling,
			r.res.quantile(0.50), r.res.quantile(0.99), r.note)
	}
	fmt.Printf("\nserver peak RSS (VmHWM): %s\n", strings.Join(peak, ", "))
	var on, off float64
	for _, r := range rows {
		switch r.name {
		case "POST /hit, coalesced, 64 conns":
			on = r.res.rate()
		case "POST /hit, one per hit, 64 conns":
			off = r.res.rate()
		}
	}
	fmt.Printf("coalesced / one per hit at 64 connections: %.1f×\n", on/off)
	return nil
}

func exactness(r result, delta int64) string {
	if delta == r.ok && r.failed == 0 {
		return fmt.Sprintf("yes: Δ %d = %d acknowledged", delta, r.ok)
	}
	return fmt.Sprintf("NO: Δ %d, %d acknowledged, %d failed (%s)", delta, r.ok, r.failed, r.firstErr)
}

// --- the server ---

type app struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

func startApp(bin, dbURL string, coalesce bool) (*app, error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "COALESCE="+strconv.FormatBool(coalesce))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (build it with `make build`)", bin, err)
	}
	a := &app{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on http://"); ok {
				addr <- u
			}
		}
		a.done <- cmd.Wait()
	}()
	select {
	case a.addr = <-addr:
		return a, nil
	case err := <-a.done:
		return nil, fmt.Errorf("%s exited before listening: %v", bin, err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not listen within 30s", bin)
	}
}

// stop ends the server gracefully and returns its peak resident memory.
func (a *app) stop() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	var rss int64
	if err == nil {
		for l := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb * 1000
			}
		}
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-a.done:
		return rss, err
	case <-time.After(20 * time.Second):
		_ = a.cmd.Process.Kill()
		return rss, errors.New("the server did not stop within 20s")
	}
}

// etag is the ETag of the current poll answer.
func (a *app) etag() (string, error) {
	c, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
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

func get(path, etag string) []byte {
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nHX-Request: true\r\n"
	if etag != "" {
		req += "If-None-Match: " + etag + "\r\n"
	}
	return []byte(req + "\r\n")
}

func post(path string) []byte {
	return []byte("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nHX-Request: true\r\nContent-Length: 0\r\n\r\n")
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

// load sends req over conns keep-alive connections for dur. Each
// connection finishes the request it has in flight when time is up, so
// every request sent is answered and counted: that is what makes the
// exactness check exact. 2xx and 304 are successes.
func load(addr string, req []byte, conns int, dur time.Duration) result {
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
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			r := bufio.NewReaderSize(c, 16<<10)
			for time.Now().Before(stop) {
				t0 := time.Now()
				_ = c.SetDeadline(t0.Add(30 * time.Second))
				if _, err := c.Write(req); err != nil {
					fail(err)
					return
				}
				status, _, err := readResponse(r)
				if err != nil {
					fail(err)
					return
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
	etag          string
}

// readResponse reads one response with a Content-Length body (all the app
// sends) and discards the body.
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
		}
	}
	_, err = r.Discard(h.contentLength)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return status, h, err
}
