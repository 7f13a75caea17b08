// Command faults is the fault suite, `make faults`: the real binary on a
// PostgreSQL cluster of its own, clicked by many concurrent clients while
// the database (and the app) are made to fail in each way an operator
// meets, and every answer classified.
//
// An answer is acknowledged (200 with the count: the hit is counted), not
// counted (a clear 503 "unavailable", or a connection refused before the
// request was sent: nothing was counted), or unknown (anything that leaves
// the client unsure: the outcome-unknown message, a 502 from nginx, a
// connection that broke after the request went out). For each scenario
// the counter's change Δ, read straight from the database, must satisfy
//
//	acknowledged ≤ Δ ≤ acknowledged + unknown
//
// and the goal is Δ == acknowledged with no unknown answer. An unknown
// answer is accepted only where it is expected (an app killed behind
// nginx), or where the app itself could not look its COMMIT up in time
// and its lookup in the background later accounts for every one exactly:
// Δ == acknowledged + those found committed. The app that lives through
// the fault is watched through its /metrics: goroutines, pool connections
// and RSS before, at the highest during, and after; its goroutines must
// come back to where they were. The command prints tables and exits 1 if
// a scenario fails any of this. Traffic goes only to loopback.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/nginx"
	"github.com/hitcounter/hitcounter/internal/patroni"
	"github.com/hitcounter/hitcounter/internal/pgcluster"
	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

type options struct {
	bin     string
	clients int
	outage  time.Duration // scenario 5
	ha      bool          // the high-availability suite (ha.go) instead
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/hitcounter", "the server binary")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients clicking")
	flag.DurationVar(&o.outage, "outage", 30*time.Second, "how long the server is down in the outage scenario")
	flag.BoolVar(&o.ha, "ha", false, "the high-availability suite: 3 Patroni nodes, two apps on the multi-host URL (make test-ha)")
	only := flag.String("run", "", "run only the scenarios whose name contains this, e.g. \"5.\"")
	flag.Parse()

	pg, err := pgcluster.Start("")
	if err != nil {
		return err
	}
	defer pg.Stop()
	s := &suite{o: o, pg: pg}
	if o.ha {
		if s.ha, err = startHA(); err != nil {
			return err
		}
		defer s.ha.Stop()
	}
	fmt.Printf("PostgreSQL in %s on port %d; %d clients clicking POST /hit; request deadline 3s (the default)\n\n", pg.Dir, pg.Port, o.clients)

	scenarios := []scenario{
		{name: "1. fast restart (pg_ctl restart -m fast)", fault: func(s *suite) error { return s.pg.Ctl("restart", "-m", "fast", "-w") }},
		{name: "2. crash (stop -m immediate), recovery", fault: func(s *suite) error {
			if err := s.pg.Ctl("stop", "-m", "immediate", "-w"); err != nil {
				return err
			}
			time.Sleep(time.Second)
			return s.pg.Start()
		}},
		{name: "3. pg_terminate_backend bursts", fault: func(s *suite) error { return s.terminateBursts(5*time.Second, 250*time.Millisecond) }},
		{name: "4. SIGSTOP 4s (past the deadline), SIGCONT", fault: func(s *suite) error { return s.pg.Freeze(4 * time.Second) }},
		// Past the deadline and the lookup's grace too: a COMMIT in flight
		// cannot be looked up in time. Its clicks are told unknown, and
		// the suite checks the app's later lookup accounts for each.
		{name: "4b. SIGSTOP 10s (past the deadline and the lookup's grace), SIGCONT", fault: func(s *suite) error { return s.pg.Freeze(10 * time.Second) }},
		{name: fmt.Sprintf("5. down %s, then up", o.outage), fault: func(s *suite) error {
			if err := s.pg.Ctl("stop", "-m", "fast", "-w"); err != nil {
				return err
			}
			time.Sleep(o.outage)
			return s.pg.Start()
		}},
		{name: "6. SIGTERM to the app", appFault: true, graceful: true, fault: func(s *suite) error { return s.apps[0].terminate() }},
		{name: "7. two apps behind nginx, one SIGKILLed", twoApps: true, appFault: true,
			unknownExpected: "requests in flight to the killed app get 502 from nginx: nobody is left to tell whether their batch committed",
			fault:           func(s *suite) error { return s.apps[0].kill() }},
		// The server dies with a COMMIT in flight before anything of its
		// transaction reached the WAL; after the restart other writers
		// take ids until that transaction's id is handed out again and
		// committed, and only then may the app look its COMMIT up. A
		// lookup by transaction id finds "committed"; the marker does not.
		{name: "8. crash with a COMMIT in flight, its id reissued before the lookup", proxied: true,
			fault: func(s *suite) error { return s.reissue() }},
	}
	if o.ha {
		scenarios = haScenarios()
	}
	failed := false
	var results []result
	for _, sc := range scenarios {
		if !strings.Contains(sc.name, *only) {
			continue
		}
		r, err := s.run(sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "faults: %s: %s\n", sc.name, r.verdict())
		failed = failed || !r.ok()
	}
	fmt.Printf("| scenario | acknowledged | not counted | unknown | Δ | Δ = acknowledged? | commits in doubt, resolved | worst latency | recovered after | no write for |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---|---|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n", r.name, r.acked, r.notCounted, r.unknown, r.delta,
			r.verdict(), resolvedText(r.resolved), r.worst.Round(time.Millisecond), r.recovery.Round(time.Millisecond), r.gap.Round(time.Millisecond))
	}
	fmt.Printf("\nRecovered after: from the end of the fault (of an outage; a kill, a crash, a switchover once the new primary holds the leader key) to the answer of the first click sent after it that was acknowledged. No write for: the longest time between two acknowledged clicks in a row.\n")
	fmt.Printf("\nThe app that lives through each fault, at rest before the load, at the highest during it, at rest after:\n\n")
	fmt.Printf("| scenario | goroutines | pool connections | RSS MB |\n|---|---|---|---|\n")
	for _, r := range results {
		x := r.resources
		if !x.watched {
			fmt.Printf("| %s | (replaced) | | |\n", r.name)
			continue
		}
		fmt.Printf("| %s | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f |\n", r.name,
			x.base.goroutines, x.peak.goroutines, x.after.goroutines,
			x.base.poolConns, x.peak.poolConns, x.after.poolConns,
			x.base.rssMB, x.peak.rssMB, x.after.rssMB)
	}
	for _, r := range results {
		if r.unknown > 0 && r.unknownExpected != "" {
			fmt.Printf("\n%s: %d unknown: %s.\n", r.name, r.unknown, r.unknownExpected)
		}
		if len(r.samples) > 0 {
			fmt.Printf("\n%s: answers that were not clear, first few:\n  %s\n", r.name, strings.Join(r.samples, "\n  "))
		}
		if len(r.logs) > 0 {
			fmt.Printf("\n%s: the app's log about them:\n  %s\n", r.name, strings.Join(r.logs, "\n  "))
		}
	}
	if failed {
		return errors.New("a scenario broke the invariant or had unknown answers")
	}
	return nil
}

type scenario struct {
	name     string
	fault    func(*suite) error
	appFault bool // the fault stops an app: it is started anew afterwards
	// graceful: the app stops by itself, answering every request it has
	// read, so a connection it closes without an answer (idle, or still in
	// the listen backlog) carried a request it never read: not counted.
	// The invariant checks the claim: had one been counted, Δ would exceed
	// the acknowledged ones.
	graceful bool
	twoApps  bool // two app instances behind nginx
	ha       bool // on the Patroni cluster: two apps on its multi-host URL, clicked in turns
	// after puts things back once the scenario is counted (a killed node
	// rejoins), so the next one starts from a healthy cluster.
	after           func(*suite) error
	proxied         bool   // the apps reach the database through pgproxy (suite.proxy)
	unknownExpected string // why unknown answers cannot be avoided here, if so
}

type suite struct {
	o     options
	pg    *pgcluster.Cluster
	ha    *patroni.Cluster // -ha
	apps  []*app
	dbURL string         // the scenario's database, straight
	proxy *pgproxy.Proxy // between the apps and dbURL, in a proxied scenario
}

type result struct {
	name                       string
	acked, notCounted, unknown int64
	delta                      int64
	worst, recovery            time.Duration
	// gap is the longest time between two acknowledgements in a row: how
	// long no click could be counted.
	gap             time.Duration
	lastAck         time.Time
	resolved        map[string]int // COMMITs in doubt the apps looked up, by outcome
	unknownExpected string
	samples         []string
	logs            []string // the apps' lines about unexpected unknown answers
	resources       resources
	// Clicks whose COMMIT the app could not look up before their deadline
	// (the server down longer than the deadline and grace), and what its
	// lookup in the background found once the server was back.
	toldUnknown, lateCommitted, lateAborted int64
	// stale says which app still showed another count than the database's
	// 15s after the load (its memory not reloaded after the fault).
	stale string
}

// accounted: every unknown answer is one the app itself could not resolve
// in time, each was resolved later, and the count agrees exactly with
// what the app then knew.
func (r result) accounted() bool {
	return r.unknown == r.toldUnknown && r.lateCommitted+r.lateAborted == r.toldUnknown &&
		r.delta == r.acked+r.lateCommitted
}

// resources are the watched app's gauges before the load, at their
// highest during the fault, and after the load; leak says what did not
// come back.
type resources struct {
	watched           bool
	base, peak, after gauges
	leak              string
}

// goroutineSlack is how many more goroutines than before the load the app
// may keep at rest: timers and the pool's background work come and go.
const goroutineSlack = 3

func (r result) invariant() bool { return r.acked <= r.delta && r.delta <= r.acked+r.unknown }

func (r result) ok() bool {
	return r.invariant() && (r.unknown == 0 || r.unknownExpected != "" || r.accounted()) && r.resources.leak == "" && r.stale == ""
}

func (r result) verdict() string {
	switch {
	case !r.invariant():
		return fmt.Sprintf("BROKEN: Δ %d outside [%d, %d]", r.delta, r.acked, r.acked+r.unknown)
	case r.resources.leak != "":
		return "LEAK: " + r.resources.leak
	case r.stale != "":
		return "STALE: " + r.stale
	case r.delta == r.acked && r.unknown == 0:
		return "yes"
	case r.unknown > 0 && r.unknownExpected == "" && r.accounted() && r.lateCommitted == 0:
		return fmt.Sprintf("yes; the %d told unknown found aborted later", r.unknown)
	case r.unknown > 0 && r.unknownExpected == "" && r.accounted() && r.lateAborted == 0:
		return fmt.Sprintf("acknowledged + the %d told unknown, found committed later", r.unknown)
	case r.unknown > 0 && r.unknownExpected == "" && r.accounted():
		return fmt.Sprintf("acknowledged + %d of the %d told unknown, found committed later", r.lateCommitted, r.unknown)
	case r.delta == r.acked:
		return "yes"
	default:
		return fmt.Sprintf("no, within the unknown (%d)", r.delta-r.acked)
	}
}

// run clicks for a second, applies the fault, goes on until the app
// answers again, clicks a second more, and counts.
func (s *suite) run(sc scenario) (result, error) {
	var dbURL string
	var err error
	if sc.ha {
		dbURL, err = s.haDatabase()
	} else {
		dbURL, err = s.pg.CreateDatabase(context.Background(), "hc_faults")
	}
	if err != nil {
		return result{}, err
	}
	s.dbURL, s.proxy = dbURL, nil
	appURL := dbURL
	if sc.proxied {
		u, err := url.Parse(dbURL)
		if err != nil {
			return result{}, err
		}
		if s.proxy, err = pgproxy.Start(u.Host); err != nil {
			return result{}, err
		}
		defer s.proxy.Close()
		u.Host = s.proxy.Addr()
		appURL = u.String()
	}
	n := 1
	if sc.twoApps || sc.ha {
		n = 2
	}
	s.apps = nil
	for range n {
		a, err := startApp(s.o.bin, appURL)
		if err != nil {
			return result{}, err
		}
		s.apps = append(s.apps, a)
	}
	defer func() {
		for _, a := range s.apps {
			a.stop()
		}
	}()
	targets := []string{s.apps[0].URL()}
	if sc.ha {
		targets = append(targets, s.apps[1].URL())
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: s.o.clients}}
	stopProxy := func() {}
	if sc.twoApps {
		srv, err := nginx.Start(nginx.Options{
			Conf:      "nginx.conf",
			Upstream:  "deploy/nginx-upstream-local.conf",
			Assets:    "assets",
			Upstreams: []string{s.apps[0].Addr, s.apps[1].Addr},
			Replace: map[string]string{
				"limit_req zone=hits burst=10 nodelay;": "# limit_req: off (the suite is one client address)",
				"limit_conn perip 32;":                  "# limit_conn: off",
			},
		})
		if err != nil {
			return result{}, err
		}
		defer srv.Stop()
		stopProxy = srv.Stop // its keep-alive connections to the apps
		targets = []string{srv.HTTPSURL}
		client.Transport = &http.Transport{MaxIdleConnsPerHost: s.o.clients,
			TLSClientConfig: &tls.Config{RootCAs: srv.CA, MinVersion: tls.VersionTLS12}}
	}
	before, err := hits(dbURL)
	if err != nil {
		return result{}, err
	}

	// The app that lives through the fault is watched: its goroutines,
	// pool and memory at rest before, at their highest during, and at rest
	// again after. (Scenario 6 replaces its only app: nothing to watch.)
	var watched *app
	switch {
	case sc.twoApps:
		watched = s.apps[1]
	case sc.ha:
		watched = s.apps[0]
	case !sc.appFault:
		watched = s.apps[0]
	}
	var base gauges
	var peak <-chan gauges
	stopWatch := make(chan struct{})
	if watched != nil {
		if base, err = watched.scrape(); err != nil {
			return result{}, err
		}
		peak = watched.watch(stopWatch)
	}

	l := &load{client: client, graceful: sc.graceful, r: result{name: sc.name, unknownExpected: sc.unknownExpected}}
	l.targets.Store(&targets)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range s.o.clients {
		wg.Go(func() { l.click(ctx, i) })
	}
	time.Sleep(time.Second)
	if err := sc.fault(s); err != nil {
		cancel()
		wg.Wait()
		return result{}, err
	}
	if sc.appFault && !sc.twoApps {
		// The app is gone: start it again, as its supervisor would.
		a, err := startApp(s.o.bin, appURL)
		if err != nil {
			cancel()
			wg.Wait()
			return result{}, err
		}
		s.apps = append(s.apps, a)
		next := []string{a.URL()}
		l.targets.Store(&next)
	}
	faultEnd := time.Now()
	l.after.Store(faultEnd.UnixNano())
	// Wait until a click made after the fault ended is acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for l.firstAckAfter.Load() == 0 {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			return result{}, errors.New("no click acknowledged within 60s after the fault")
		}
		time.Sleep(10 * time.Millisecond)
	}
	recovered := time.Unix(0, l.firstAckAfter.Load())
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	client.CloseIdleConnections()
	stopProxy()
	res := resources{watched: watched != nil}
	if watched != nil {
		close(stopWatch)
		res.base, res.peak = base, <-peak
		// At rest again: the clients' connections closed, the app's
		// goroutines come back to where they were before the load.
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, err := watched.scrape()
			if err != nil {
				return result{}, err
			}
			res.after = g
			if g.goroutines <= base.goroutines+goroutineSlack {
				break
			}
			if time.Now().After(deadline) {
				res.leak = fmt.Sprintf("%v goroutines 10s after the load, %v before it", g.goroutines, base.goroutines)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Clicks told "unknown" because the server could not be asked in time
	// are looked up again in the background: wait for those answers.
	told := 0
	for _, a := range s.apps {
		told += a.logCount(`msg="db commit resolved"`, "outcome=unknown")
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		late := 0
		for _, a := range s.apps {
			late += a.logCount(`msg="db commit resolved late"`)
		}
		if late >= told {
			break
		}
	}

	after, err := hits(dbURL)
	if err != nil {
		return result{}, err
	}
	r := l.result()
	r.delta = after - before
	for _, a := range s.apps {
		if !a.alive() {
			continue
		}
		if shown, err := a.showsCount(after, 15*time.Second); err != nil {
			return result{}, err
		} else if shown != after {
			r.stale = fmt.Sprintf("%s shows %d, the database holds %d", a.Addr, shown, after)
		}
	}
	for _, a := range s.apps {
		r.toldUnknown += a.clicks(`msg="db commit resolved"`, "outcome=unknown")
		r.lateCommitted += a.clicks(`msg="db commit resolved late"`, "outcome=committed")
		r.lateAborted += a.clicks(`msg="db commit resolved late"`, "outcome=aborted")
	}
	r.resolved = map[string]int{}
	for _, a := range s.apps {
		for _, outcome := range []string{"committed", "aborted", "unknown"} {
			r.resolved[outcome] += a.logCount(`msg="db commit resolved"`, "outcome="+outcome)
		}
	}
	r.recovery = max(recovered.Sub(faultEnd), 0)
	r.resources = res
	if r.unknown > 0 && sc.unknownExpected == "" {
		for _, a := range s.apps {
			r.logs = append(r.logs, a.logLines(10, "db commit resolved", "db commit still in doubt", "outcome unknown", "db transaction failed")...)
		}
	}
	if sc.after != nil {
		if err := sc.after(s); err != nil {
			return result{}, fmt.Errorf("putting things back: %w", err)
		}
	}
	return r, nil
}

// terminateBursts kills the app's database sessions every interval.
func (s *suite) terminateBursts(d, every time.Duration) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.pg.URL("postgres"))
		if err == nil {
			_, err = conn.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
				where backend_type = 'client backend' and pid <> pg_backend_pid() and datname like 'hc_faults_%'`)
			conn.Close(ctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("terminate: %w", err)
		}
		time.Sleep(every)
	}
	return nil
}

// reissue holds a COMMIT in flight at the proxy, sets the trap with
// CrashAndReissue, and only then lets the app reach the server again and
// look its COMMIT up.
func (s *suite) reissue() error {
	s.proxy.Arm(pgproxy.CrashAtCommit, 1)
	for deadline := time.Now().Add(10 * time.Second); s.proxy.Armed(pgproxy.CrashAtCommit) != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("no COMMIT within 10s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	xid, err := s.pg.CrashAndReissue(ctx, s.dbURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "faults: transaction id %d of the COMMIT in flight was handed out again and committed before the app could look it up\n", xid)
	s.proxy.SetDown(false)
	return nil
}

// --- the load ---

type load struct {
	client   *http.Client
	graceful bool                     // see scenario.graceful
	targets  atomic.Pointer[[]string] // client i clicks targets[i % len]
	// after is when the fault ended (unix nanoseconds, 0: not yet), and
	// firstAckAfter when the first click sent after it was acknowledged:
	// writes were back then.
	after, firstAckAfter atomic.Int64

	mu sync.Mutex
	r  result
}

func (l *load) click(ctx context.Context, i int) {
	for ctx.Err() == nil {
		start := time.Now()
		targets := *l.targets.Load()
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, targets[i%len(targets)]+"/hit", nil)
		req.Header.Set("HX-Request", "true")
		resp, err := l.client.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		took := time.Since(start)
		kind, sample := classify(resp, body, err, l.graceful)
		l.mu.Lock()
		l.r.worst = max(l.r.worst, took)
		switch kind {
		case acknowledged:
			l.r.acked++
			now := time.Now()
			if !l.r.lastAck.IsZero() {
				l.r.gap = max(l.r.gap, now.Sub(l.r.lastAck))
			}
			l.r.lastAck = now
			if after := l.after.Load(); after != 0 && start.UnixNano() >= after {
				l.firstAckAfter.CompareAndSwap(0, time.Now().UnixNano())
			}
		case notCounted:
			l.r.notCounted++
		case unknown:
			l.r.unknown++
			if len(l.r.samples) < 5 {
				l.r.samples = append(l.r.samples, sample)
			}
		}
		l.mu.Unlock()
		if kind == notCounted {
			time.Sleep(20 * time.Millisecond) // as a person would, not a spin
		}
	}
}

func (l *load) result() result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r
}

type answer int

const (
	acknowledged answer = iota
	notCounted
	unknown
)

// classify tells what a client knows from an answer.
func classify(resp *http.Response, body []byte, err error, graceful bool) (answer, string) {
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return notCounted, "" // refused: the request was never sent
		}
		// net/http's words (the error is not exported) for a kept-alive
		// connection the server closed as idle, in its graceful shutdown,
		// just as the request went out: a Go server closes only connections
		// it has not begun to read a request from, so it was never handled.
		if strings.Contains(err.Error(), "server closed idle connection") {
			return notCounted, ""
		}
		if graceful && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return notCounted, ""
		}
		return unknown, "transport: " + err.Error()
	}
	switch {
	case resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`id="count"`)):
		return acknowledged, ""
	case resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(body, []byte("Counter unavailable")):
		return notCounted, ""
	}
	return unknown, fmt.Sprintf("%d %s", resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
}

// --- the app ---

// app is an instance of the server under test.
type app struct{ *testkit.Program }

func startApp(bin, dbURL string) (*app, error) {
	p, err := testkit.Start(bin, append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "METRICS_ADDR=127.0.0.1:0"), nil, "-migrate")
	if err != nil {
		return nil, fmt.Errorf("%w (build it with `make build`)", err)
	}
	return &app{p}, nil
}

// terminate sends SIGTERM and waits for the app to exit; it must exit 0.
func (a *app) terminate() error {
	if err := a.Stop(20 * time.Second); err != nil {
		return fmt.Errorf("the app after SIGTERM: %w", err)
	}
	return nil
}

// alive: the app has not exited.
func (a *app) alive() bool {
	select {
	case <-a.Exited():
		return false
	default:
		return true
	}
}

// showsCount asks the app for the main counter's total until it shows want
// or d has passed, and returns the last total it showed.
func (a *app) showsCount(want int64, d time.Duration) (int64, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	var got struct {
		Total int64 `json:"total"`
	}
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get(a.URL() + "/api/counters/main")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
		}
		if err == nil && got.Total == want {
			return got.Total, nil
		}
		if time.Now().After(deadline) {
			return got.Total, nil
		}
	}
}

func (a *app) kill() error {
	a.Kill()
	return nil
}

func (a *app) stop() { _ = a.Stop(20 * time.Second) }

// gauges are what the suite watches of an app's resources.
type gauges struct {
	goroutines, poolConns, rssMB float64
}

// scrape reads the app's gauges from its /metrics.
func (a *app) scrape() (gauges, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(a.Metrics)
	if err != nil {
		return gauges{}, err
	}
	defer resp.Body.Close()
	var g gauges
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			g.goroutines, found = v, found+1
		case "hitcounter_db_pool_conns":
			g.poolConns, found = v, found+1
		case "process_resident_memory_bytes":
			g.rssMB, found = v/(1<<20), found+1
		}
	}
	if found != 3 {
		return g, fmt.Errorf("%s: %d of the 3 gauges", a.Metrics, found)
	}
	return g, sc.Err()
}

// watch samples the app's gauges every 100ms until stop, and returns the
// highest of each.
func (a *app) watch(stop <-chan struct{}) <-chan gauges {
	peak := make(chan gauges, 1)
	go func() {
		var p gauges
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if g, err := a.scrape(); err == nil {
				p = gauges{max(p.goroutines, g.goroutines), max(p.poolConns, g.poolConns), max(p.rssMB, g.rssMB)}
			}
			select {
			case <-stop:
				peak <- p
				return
			case <-tick.C:
			}
		}
	}()
	return peak
}

// linesWith returns the app's log lines that have every one of parts.
func (a *app) linesWith(parts ...string) []string {
	var out []string
	for l := range strings.SplitSeq(a.Logs.String(), "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			out = append(out, l)
		}
	}
	return out
}

// logCount counts the app's log lines that have every one of parts.
func (a *app) logCount(parts ...string) int { return len(a.linesWith(parts...)) }

// clicks sums the batch sizes (n=) of the app's log lines that have every
// one of parts.
func (a *app) clicks(parts ...string) int64 {
	var sum int64
	for _, l := range a.linesWith(parts...) {
		for f := range strings.FieldsSeq(l) {
			if v, ok := strings.CutPrefix(f, "n="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// logLines returns up to n of the app's log lines that have any of parts.
func (a *app) logLines(n int, parts ...string) []string {
	var out []string
	for _, l := range a.linesWith() {
		if len(out) < n && slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(l, p) }) {
			out = append(out, l)
		}
	}
	return out
}

func resolvedText(m map[string]int) string {
	if m["committed"]+m["aborted"]+m["unknown"] == 0 {
		return "none"
	}
	return fmt.Sprintf("%d committed, %d aborted, %d unknown", m["committed"], m["aborted"], m["unknown"])
}

// --- the database ---

func hits(dbURL string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn *pgx.Conn
	var err error
	for range 60 { // the server may still be recovering
		if conn, err = pgx.Connect(ctx, dbURL); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "select hits from counters where name = 'main'").Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}
