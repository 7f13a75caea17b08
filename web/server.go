// Package web is the HTTP side of hitcounter: routes, handlers and
// middleware on Chi. It reaches the database only through the small Store
// interface below and renders only through views.
package web

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// Store is what the handlers need from the counter storage. *db.Store
// satisfies it; errors wrap the kinds of package db.
type Store interface {
	// Record counts one hit of a counter and returns its counts after it.
	Record(ctx context.Context, counter string, h db.Hit) (db.Counts, error)
	// Counts returns a counter's total and today's figures.
	Counts(ctx context.Context, counter string) (db.Counts, error)
	// Days returns a counter's day rows from from to to (dates).
	Days(ctx context.Context, counter string, from, to time.Time) ([]db.Day, error)
	// Today is the current date in the store's timezone.
	Today() time.Time
	// Ready reports whether the storage can serve requests now.
	Ready(ctx context.Context) error
}

// Config tunes the HTTP side. The zero value of a field means its default.
type Config struct {
	// PollInterval is how often pages refresh the count (DefaultPollInterval).
	PollInterval time.Duration
	// RequestTimeout bounds each request's work, database retries included
	// (DefaultRequestTimeout); it must stay below any reverse proxy's timeout.
	// The pages' htmx waits htmxGrace longer before it gives up.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 4 KiB); larger ones get 413.
	MaxBodyBytes int64
	// ClientIPHeader, when set, is the header a trusted reverse proxy sets
	// to the client's address (e.g. X-Real-IP). Leave it empty when the
	// server is reachable directly: the header would be spoofable.
	ClientIPHeader string
	// TrustedProxies are the peers (CIDR prefixes, e.g. 127.0.0.1/32) whose
	// word about the client is believed: ClientIPHeader and
	// X-Forwarded-Proto. Empty trusts any peer when ClientIPHeader is set
	// (a proxy is said to be in front) and none otherwise.
	TrustedProxies []netip.Prefix
	// NotCounted lists client networks whose hits are not counted at all
	// (the owner's own): their pages show the count without adding to it.
	NotCounted []netip.Prefix
	// BurstLimit is the most views one client IP counts per counter per
	// minute; the rest are answered but recorded as filtered. 0: no limit.
	BurstLimit int
	// EmbedOrigins may frame /c/{name}/embed (CSP frame-ancestors), as
	// scheme://host[:port]; every other page refuses to be framed.
	EmbedOrigins []string
	// ObserveRequest, when set, hears every answered request: its route
	// pattern ("unmatched" for none), method, status (499 when the client
	// left first) and duration (metrics).
	ObserveRequest func(route, method string, status int, d time.Duration)
	// Draining, when it says true, makes /readyz answer 503: the process
	// is shutting down and proxies should stop sending it requests.
	Draining func() bool
	// APIToken, when set, lets server-side callers count hits through
	// POST /api/counters/{name}/hit with "Authorization: Bearer APIToken".
	APIToken string
}

// The defaults of Config, and of the settings that set it (main.go).
const (
	DefaultPollInterval   = 2 * time.Second
	DefaultRequestTimeout = 3 * time.Second
)

func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 10
	}
	return c
}

// mainCounter is the counter of the home page, /.
const mainCounter = db.MainCounter

// htmxGrace is how much longer than RequestTimeout the pages' htmx waits
// for an answer, so that the server's own answer at its deadline ("Counter
// unavailable, retrying…", a 503) arrives, rendered and sent, before htmx
// gives up silently and leaves a stale count on the page.
const htmxGrace = time.Second

type server struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	static *staticFiles
	assets views.Assets
	mux    *chi.Mux
	kinds  map[string]routeKind // route pattern → its kind (routes.go)
	bots   *botDetector
	burst  *burstCap
	// creations limits the counters a client creates (counting.go).
	creations *burstCap

	lastPolls *pollCache // the last poll answers (handlers.go)
}

// NewServer returns the whole HTTP handler: routes, middleware and the
// static files in staticFS (served under /static/).
func NewServer(cfg Config, store Store, staticFS fs.FS, htmxFile string, log *slog.Logger) (http.Handler, error) {
	st, err := loadStatic(staticFS)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := views.Assets{HTMX: htmxFile, CSS: "style.css", Favicon: "favicon.svg", Copy: "copy.js",
		HTMXTimeout: cfg.RequestTimeout + htmxGrace}
	for _, name := range []*string{&a.HTMX, &a.CSS, &a.Favicon, &a.Copy} {
		if !st.has(*name) {
			return nil, fmt.Errorf("static file %q is missing", *name)
		}
		*name = staticPath(*name)
	}
	s := &server{
		cfg:    cfg,
		store:  store,
		log:    log,
		static: st,
		assets: a,
	}
	s.bots = newBotDetector()
	s.lastPolls = newPollCache()
	s.burst = newBurstCap(s.cfg.BurstLimit, time.Minute)
	s.creations = newBurstCap(maxCreations, creationWindow)
	s.routes()
	return s.mux, nil
}
