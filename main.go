// Command hitcounter serves a page that counts its hits in PostgreSQL.
//
// main only wires the operating system into run, so tests can run the whole
// program in-process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // TIMEZONE works in images without /usr/share/zoneinfo

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/owner"
	"github.com/hitcounter/hitcounter/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "hitcounter: %v\n", err)
		os.Exit(1)
	}
}

// config is everything run can be told, from flags or the environment.
type config struct {
	addr            string
	databaseURL     string
	migrate         bool
	store           db.Config
	coalesce        bool
	pollInterval    time.Duration
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	shutdownDrain   time.Duration
	maxConns        int
	metricsAddr     string
	migrateWait     time.Duration
	logLevel        string
	logFormat       string
	clientIPHeader  string
	trustedProxies  string
	timezone        string
	notCounted      string
	burstLimit      int
	embedOrigins    string
	apiToken        string
	probe           string
	cpuProfile      string

	// Parsed from the strings above by parseConfig, before any side effect.
	web web.Config
}

// flags defines every setting on fs; envOf maps each flag to the
// environment variable that gives its default.
func flags(c *config, fs *flag.FlagSet) (envOf map[string]string) {
	envOf = map[string]string{}
	str := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, def, usage+" ($"+env+")")
		envOf[name] = env
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage+" ($"+env+")")
		envOf[name] = env
	}
	str(&c.addr, "addr", "ADDR", ":8000", "listen address")
	str(&c.databaseURL, "database-url", "DATABASE_URL", "", "PostgreSQL URL, postgres://user:password@host:port/db (required)")
	fs.BoolVar(&c.migrate, "migrate", false, "apply the embedded migrations at start ($MIGRATE)")
	envOf["migrate"] = "MIGRATE"
	integer := func(p *int, name, env string, usage string) {
		fs.IntVar(p, name, *p, usage+" ($"+env+")")
		envOf[name] = env
	}
	float := func(p *float64, name, env string, usage string) {
		fs.Float64Var(p, name, *p, usage+" ($"+env+")")
		envOf[name] = env
	}
	r := &c.store.Retry
	integer(&r.MaxRetries, "db-retries", "DB_RETRIES", "retries of a failed database transaction")
	dur(&r.InitialDelay, "db-retry-initial-delay", "DB_RETRY_INITIAL_DELAY", r.InitialDelay, "wait before the first retry")
	float(&r.Factor, "db-retry-factor", "DB_RETRY_FACTOR", "backoff factor between retries")
	dur(&r.MaxDelay, "db-retry-max-delay", "DB_RETRY_MAX_DELAY", r.MaxDelay, "cap on one wait between retries")
	float(&r.Jitter, "db-retry-jitter", "DB_RETRY_JITTER", "random fraction taken off each wait, 0 to 1")
	fs.BoolVar(&c.coalesce, "coalesce", true, "combine concurrent increments of a counter into one statement; false makes every hit its own transaction ($COALESCE)")
	envOf["coalesce"] = "COALESCE"
	integer(&c.store.MaxBatch, "batch-max", "BATCH_MAX", "most increments one statement adds")
	integer(&c.store.MaxQueued, "queue-max", "QUEUE_MAX", "most increments of one counter waiting for their statement; more get 503 at once")
	dur(&c.pollInterval, "poll-interval", "POLL_INTERVAL", web.DefaultPollInterval, "how often pages refresh the count")
	dur(&c.requestTimeout, "request-timeout", "REQUEST_TIMEOUT", web.DefaultRequestTimeout, "deadline of one request, retries included")
	dur(&c.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 10*time.Second, "the most a shutdown takes, requests in flight and closing the database pool included")
	dur(&c.shutdownDrain, "shutdown-drain", "SHUTDOWN_DRAIN", time.Second, "on SIGTERM, how long /readyz says 503 before the listener closes, so proxies stop sending")
	c.maxConns = 10000
	integer(&c.maxConns, "max-conns", "MAX_CONNS", "most open client connections; over it the longest idle one is closed to make room")
	dur(&c.migrateWait, "migrate-wait", "MIGRATE_WAIT", time.Minute, "with -migrate, how long to wait for the database at start before failing")
	str(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.logFormat, "log-format", "LOG_FORMAT", "text", "text or json")
	str(&c.clientIPHeader, "client-ip-header", "CLIENT_IP_HEADER", "", "header a trusted reverse proxy sets to the client IP, e.g. X-Real-IP; empty when exposed directly")
	str(&c.trustedProxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDRs allowed to set the client IP header; empty trusts any peer")
	str(&c.timezone, "timezone", "TIMEZONE", "UTC", "IANA timezone of \"today\" for day rows and visitors, e.g. Europe/Berlin")
	fs.BoolVar(&c.store.AutoCreate, "auto-create", false, "a hit of an unknown counter name creates it, up to -max-counters ($AUTO_CREATE)")
	envOf["auto-create"] = "AUTO_CREATE"
	integer(&c.store.MaxCounters, "max-counters", "MAX_COUNTERS", "most counters auto-creation makes")
	str(&c.notCounted, "not-counted", "NOT_COUNTED", "", "comma-separated client CIDRs whose hits are not counted (your own)")
	integer(&c.burstLimit, "burst-limit", "BURST_LIMIT", "most views one client IP counts per counter per minute, the rest recorded as filtered; 0 is no limit")
	str(&c.embedOrigins, "embed-origins", "EMBED_ORIGINS", "", "comma-separated origins (https://example.com) that may frame /c/NAME/embed")
	str(&c.apiToken, "api-token", "API_TOKEN", "", "bearer token for POST /api/counters/NAME/hit; empty switches API writes off")
	str(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "", "listen address of Prometheus /metrics, apart from the app's; empty: no metrics")
	fs.StringVar(&c.probe, "probe", "", "only GET this URL and exit 0 if it answers 200: a health check for images without curl")
	fs.StringVar(&c.cpuProfile, "cpu-profile", "", "write a CPU profile (go tool pprof) to this file from start to shutdown")
	return envOf
}

// parseConfig reads flags; each flag's default comes from its environment
// variable, so both ways work and a flag wins over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{store: db.DefaultConfig()}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	envOf := flags(&c, fs)

	// Environment first, so flags given on the command line override it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env, ok := envOf[f.Name]
		if v := getenv(env); ok && v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("$%s=%q: %w", env, v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.probe != "" {
		return c, nil // the probe needs nothing else
	}
	switch {
	case c.databaseURL == "":
		return c, errors.New("no database: set DATABASE_URL or -database-url (`make run` starts a local PostgreSQL for you)")
	case c.pollInterval < 100*time.Millisecond:
		return c, fmt.Errorf("poll interval %s is too short (minimum 100ms)", c.pollInterval)
	case c.requestTimeout <= 0:
		return c, fmt.Errorf("request timeout must be > 0, got %s", c.requestTimeout)
	case c.shutdownTimeout <= 0:
		return c, fmt.Errorf("shutdown timeout must be > 0, got %s", c.shutdownTimeout)
	case c.shutdownDrain < 0 || c.shutdownDrain >= c.shutdownTimeout:
		return c, fmt.Errorf("shutdown drain (%s) must be ≥ 0 and shorter than the shutdown timeout (%s)", c.shutdownDrain, c.shutdownTimeout)
	case c.migrateWait <= 0:
		return c, fmt.Errorf("migrate wait must be > 0, got %s", c.migrateWait)
	case c.maxConns < 1:
		return c, fmt.Errorf("max conns must be ≥ 1, got %d", c.maxConns)
	}
	if c.metricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.metricsAddr); err != nil || port == "" {
			return c, fmt.Errorf("metrics address %q: want host:port, e.g. 127.0.0.1:9100 or :9100", c.metricsAddr)
		}
	}
	c.store.OnePerHit = !c.coalesce
	loc, err := time.LoadLocation(c.timezone)
	if err != nil || c.timezone == "" || c.timezone == "Local" {
		return c, fmt.Errorf("timezone %q: want an IANA name such as UTC or Europe/Berlin", c.timezone)
	}
	c.store.Location = loc
	if err := c.store.Validate(); err != nil {
		return c, err
	}
	c.web = web.Config{
		PollInterval:   c.pollInterval,
		RequestTimeout: c.requestTimeout,
		ClientIPHeader: c.clientIPHeader,
		BurstLimit:     c.burstLimit,
		APIToken:       c.apiToken,
	}
	if c.web.TrustedProxies, err = prefixes("trusted proxy", c.trustedProxies); err != nil {
		return c, err
	}
	if c.web.NotCounted, err = prefixes("not-counted network", c.notCounted); err != nil {
		return c, err
	}
	if c.burstLimit < 0 {
		return c, fmt.Errorf("burst limit must be ≥ 0, got %d", c.burstLimit)
	}
	for o := range strings.SplitSeq(c.embedOrigins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || strings.ContainsAny(o, " ;,'\"") {
			return c, fmt.Errorf("embed origin %q: want scheme://host[:port], e.g. https://blog.example.com", o)
		}
		c.web.EmbedOrigins = append(c.web.EmbedOrigins, u.Scheme+"://"+u.Host)
	}
	return c, nil
}

// prefixes parses a comma-separated list of CIDRs; a bare address is one
// host.
func prefixes(what, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for p := range strings.SplitSeq(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want a CIDR such as 192.0.2.0/24 or an address", what, p)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// run is the whole program. It serves until ctx is done, then shuts down
// gracefully. It prints "listening on http://ADDR" to stdout once the
// listener is open. `hitcounter counters …` is the owner's controls
// instead (package owner).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "counters" {
		return owner.Run(ctx, args[1:], getenv, stdin, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.probe != "" {
		return probe(ctx, cfg.probe, stdout)
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}

	var m *metrics
	if cfg.metricsAddr != "" {
		m = newMetrics()
		cfg.store.Observer = m
		cfg.web.ObserveRequest = m.observeRequest
	}
	store, err := db.Open(cfg.databaseURL, cfg.store, log)
	if err != nil {
		return err
	}
	shuttingDown := false // from then on shutdown closes the store, within its timeout
	defer func() {
		if !shuttingDown {
			store.Close()
		}
	}()
	// The database may come after the app (a host's reboot starts both at
	// once): without -migrate, serve anyway, 503 until it answers.
	if cfg.migrate {
		if err := migrateWhenReachable(ctx, store, cfg.migrateWait, log); err != nil {
			return err
		}
	} else if err := store.Ping(ctx); err != nil {
		log.Warn("the database does not answer yet: serving, with 503 for counts until it does", "err", err)
	}

	var draining atomic.Bool
	cfg.web.Draining = draining.Load
	handler, err := web.NewServer(cfg.web, store, assets.FS, assets.HTMX, log)
	if err != nil {
		return err
	}

	maxConns, err := connLimit(cfg.maxConns)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	ln := newConnGuard(tcp, maxConns)
	srv := &http.Server{
		Handler:           handler,
		ConnState:         ln.connState,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Longer than the request deadline and the lookup of a COMMIT in
		// doubt after it, so the true answer is the one sent.
		WriteTimeout: cfg.requestTimeout + db.ResolveGrace + 5*time.Second,
		// Short enough that idle keep-alive connections do not pile up.
		IdleTimeout:    time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 2)
	if m != nil {
		m.watchStore(store)
		mln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		defer msrv.Close() // its scrapes need no draining
		go func() {
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("metrics: %w", err)
			}
		}()
		log.Info("metrics", "addr", mln.Addr().String())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", displayAddr(mln.Addr().(*net.TCPAddr)))
	}
	log.Info("listening", "addr", ln.Addr().String(), "max_conns", maxConns)
	fmt.Fprintf(stdout, "listening on http://%s\n", displayAddr(ln.Addr().(*net.TCPAddr)))

	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shuttingDown = true
	return shutdown(srv, &draining, store.Close, cfg, log)
}

// shutdown stops within cfg.shutdownTimeout, all of it: /readyz turns 503
// for the drain, so proxies stop sending here; then the listener closes,
// idle connections close, and requests in flight (and their queued
// batches) finish; then the database pool closes. A pool
// that does not close in the time left (a frozen server) is left behind:
// the process exits anyway, and the server drops the connections.
func shutdown(srv *http.Server, draining *atomic.Bool, closeStore func(), cfg config, log *slog.Logger) error {
	deadline := time.Now().Add(cfg.shutdownTimeout)
	log.Info("shutting down: not ready, draining", "drain", cfg.shutdownDrain, "timeout", cfg.shutdownTimeout)
	// Kept-alive connections stay open while draining: closing them early
	// only widens the race of a request sent on a connection as it closes
	// (measured with make faults), and new connections would then queue
	// in the listener's backlog, to be reset when it closes.
	draining.Store(true)
	time.Sleep(cfg.shutdownDrain)

	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = fmt.Errorf("shutdown: requests still in flight at the deadline: %w", err)
	}
	closed := make(chan struct{})
	go func() {
		closeStore()
		close(closed)
	}()
	select {
	case <-closed:
	case <-sctx.Done():
		log.Warn("the database pool did not close within the shutdown timeout: exiting without it")
	}
	log.Info("stopped")
	return err
}

// migrateWhenReachable applies the migrations, waiting up to wait for a
// database that is not up yet.
func migrateWhenReachable(ctx context.Context, store *db.Store, wait time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		err := store.Migrate(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, db.ErrUnavailable) || ctx.Err() != nil {
			return fmt.Errorf("migrate (waited up to %s for the database): %w", wait, err)
		}
		log.Warn("the database does not answer yet: waiting to migrate", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: the database did not answer within %s: %w", wait, err)
		case <-time.After(time.Second):
		}
	}
}

// startCPUProfile profiles the whole process until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// displayAddr is a listen address as a person would browse to it: a
// wildcard address is reached as localhost.
func displayAddr(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", strconv.Itoa(a.Port))
	}
	return a.String()
}

// probe is the container health check: the runtime image has no shell or
// curl, so the binary checks its own endpoint.
func probe(ctx context.Context, url string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: %s answered %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return nil
}
