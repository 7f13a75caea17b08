package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/settings"
	"github.com/hitcounter/hitcounter/web"
)

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
	printConfig     bool

	// Parsed from the strings above by parseConfig, before any side effect.
	web web.Config
	// Each setting as NAME=value of its environment variable, secrets
	// hidden: what -print-config prints.
	settings []string
}

// parseConfig reads flags; each flag's default comes from its environment
// variable, so both ways work and a flag wins over the environment. Every
// setting is checked here, so that run fails on a bad one before it does
// anything.
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
	if err := c.validate(); err != nil {
		return c, err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if env, ok := envOf[f.Name]; ok {
			c.settings = append(c.settings, env+"="+hidden(env, f.Value.String()))
		}
	})
	return c, nil
}

// hidden is a setting's value as -print-config shows it: the database
// URL without its password, the API token only as set or not.
func hidden(env, v string) string {
	switch {
	case v == "":
		return v
	case env == "API_TOKEN":
		return "xxxxx"
	case env == "DATABASE_URL":
		if u, err := url.Parse(v); err == nil && u.Scheme != "" {
			return u.Redacted()
		}
		return "xxxxx" // not a URL: it may hold the password anywhere
	}
	return v
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
	str(&c.trustedProxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDRs allowed to set the client IP header and X-Forwarded-Proto; required with -client-ip-header")
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
	fs.BoolVar(&c.printConfig, "print-config", false, "check the settings, print each as NAME=value of its environment variable (passwords hidden), and exit")
	return envOf
}

// validate checks the settings that flag parsing does not, and fills in
// what is parsed from them: the store's location, web's networks and
// origins.
func (c *config) validate() error {
	switch {
	case c.databaseURL == "":
		return errors.New("no database: set DATABASE_URL or -database-url (`make run` starts a local PostgreSQL for you)")
	case c.pollInterval < 100*time.Millisecond:
		return fmt.Errorf("poll interval %s is too short (minimum 100ms)", c.pollInterval)
	case c.requestTimeout <= 0:
		return fmt.Errorf("request timeout must be > 0, got %s", c.requestTimeout)
	case c.shutdownTimeout <= 0:
		return fmt.Errorf("shutdown timeout must be > 0, got %s", c.shutdownTimeout)
	case c.shutdownDrain < 0 || c.shutdownDrain >= c.shutdownTimeout:
		return fmt.Errorf("shutdown drain (%s) must be ≥ 0 and shorter than the shutdown timeout (%s)", c.shutdownDrain, c.shutdownTimeout)
	case c.migrateWait <= 0:
		return fmt.Errorf("migrate wait must be > 0, got %s", c.migrateWait)
	case c.maxConns < 1:
		return fmt.Errorf("max conns must be ≥ 1, got %d", c.maxConns)
	case c.burstLimit < 0:
		return fmt.Errorf("burst limit must be ≥ 0, got %d", c.burstLimit)
	}
	if c.metricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.metricsAddr); err != nil || port == "" {
			return fmt.Errorf("metrics address %q: want host:port, e.g. 127.0.0.1:9100 or :9100", c.metricsAddr)
		}
	}
	c.store.OnePerHit = !c.coalesce
	loc, err := settings.Timezone(c.timezone)
	if err != nil {
		return err
	}
	c.store.Location = loc
	if err := c.store.Validate(); err != nil {
		return err
	}
	c.web = web.Config{
		PollInterval:   c.pollInterval,
		RequestTimeout: c.requestTimeout,
		ClientIPHeader: c.clientIPHeader,
		BurstLimit:     c.burstLimit,
		APIToken:       c.apiToken,
	}
	if c.web.TrustedProxies, err = prefixes("trusted proxy", c.trustedProxies); err != nil {
		return err
	}
	if c.clientIPHeader != "" && len(c.web.TrustedProxies) == 0 {
		// Believed from every peer, the header lets any client invent
		// visitors and slip past BURST_LIMIT.
		return fmt.Errorf("CLIENT_IP_HEADER is %s but TRUSTED_PROXIES is empty: any client could set it; "+
			"list the proxy's addresses, e.g. TRUSTED_PROXIES=127.0.0.1/32", c.clientIPHeader)
	}
	if c.web.NotCounted, err = prefixes("not-counted network", c.notCounted); err != nil {
		return err
	}
	c.web.EmbedOrigins, err = origins(c.embedOrigins)
	return err
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

// origins parses a comma-separated list of origins a page may be framed
// by; each goes into a Content-Security-Policy header, so nothing but
// scheme://host[:port] gets through.
func origins(list string) ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || strings.ContainsAny(o, " ;,'\"") {
			return nil, fmt.Errorf("embed origin %q: want scheme://host[:port], e.g. https://blog.example.com", o)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

// newLogger is the logger LOG_LEVEL and LOG_FORMAT ask for.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	l, err := settings.LogLevel(level)
	if err != nil {
		return nil, err
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
