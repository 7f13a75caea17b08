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
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // TIMEZONE works in images without /usr/share/zoneinfo

	"github.com/hitcounter/hitcounter/assets"
	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/metrics"
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

// maxHeaderBytes is the most a request line and its header fields may
// take, to the blank line that ends them; over it, the answer is 431.
const maxHeaderBytes = 16 << 10

// netHTTPHeaderSlack is what net/http reads beyond http.Server's
// MaxHeaderBytes before it answers 431 (its "bufio slop": it allows
// MaxHeaderBytes + 4096), so MaxHeaderBytes is set this much below the
// limit. TestRunHeaderLimit checks the limit to the byte, so a change in
// net/http shows there.
const netHTTPHeaderSlack = 4096

// run is the whole program. It serves until ctx is done or a listener
// fails, then shuts down gracefully. It prints "listening on
// http://ADDR" to stdout once it serves. `hitcounter counters …` is the
// owner's controls instead (package owner).
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
	if cfg.printConfig {
		_, err := fmt.Fprintln(stdout, strings.Join(cfg.settings, "\n"))
		return err
	}
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Both ports are bound before the database is touched, so that a port
	// in use fails the start before -migrate has changed the schema.
	maxConns, err := connLimit(cfg.maxConns)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	ln := newConnGuard(tcp, maxConns)
	defer ln.Close() // when run fails before serving; a second Close is harmless
	var m *metrics.Metrics
	var mln net.Listener
	if cfg.metricsAddr != "" {
		if mln, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer mln.Close()
		m = metrics.New()
		m.WatchShed(ln.shed.Load)
		cfg.store.Observer = m
		cfg.web.ObserveRequest = m.ObserveRequest
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
		MaxHeaderBytes: maxHeaderBytes - netHTTPHeaderSlack,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	// A Serve returns when shutdown closes its listener, or before, when
	// the listener fails: then the program stops as on SIGTERM, rather
	// than serve on without its metrics or its port.
	failed := make(chan error, 2)
	var serving sync.WaitGroup
	serve := func(name string, s *http.Server, l net.Listener) {
		serving.Go(func() {
			if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	var msrv *http.Server
	if m != nil {
		m.WatchStore(store)
		msrv = m.Server()
		serve("metrics", msrv, mln)
		log.Info("metrics", "addr", mln.Addr().String())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", displayAddr(mln.Addr().(*net.TCPAddr)))
	}
	serve("app", srv, ln)
	log.Info("listening", "addr", ln.Addr().String(), "max_conns", maxConns)
	fmt.Fprintf(stdout, "listening on http://%s\n", displayAddr(ln.Addr().(*net.TCPAddr)))

	var cause error
	select {
	case cause = <-failed:
	case <-ctx.Done():
	}
	shuttingDown = true
	err = shutdown(srv, msrv, &draining, store.Close, cfg, log)
	serving.Wait()
	return errors.Join(cause, err)
}

// shutdown stops within cfg.shutdownTimeout, all of it: /readyz turns 503
// for the drain, so proxies stop sending here; then the listener closes,
// idle connections close, and requests in flight (and their queued
// batches) finish; then the metrics server (nil when off), which served
// through the drain, and the database pool close. A pool that does not
// close in the time left (a frozen server) is left behind: the process
// exits anyway, and the server drops the connections.
func shutdown(srv, msrv *http.Server, draining *atomic.Bool, closeStore func(), cfg config, log *slog.Logger) error {
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
	if msrv != nil {
		if merr := msrv.Shutdown(sctx); merr != nil {
			err = errors.Join(err, fmt.Errorf("shutdown: scrapes still in flight at the deadline: %w", merr))
		}
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
