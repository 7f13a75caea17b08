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
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hitcounter/hitcounter/views"
)

// Store is what the handlers need from the counter storage. *db.Store
// satisfies it; errors wrap the kinds of package db.
type Store interface {
	// Increment adds one hit and returns the new count.
	Increment(ctx context.Context, counter string) (int64, error)
	// Count returns the current count.
	Count(ctx context.Context, counter string) (int64, error)
	// Ready reports whether the storage can serve requests now.
	Ready(ctx context.Context) error
}

// Config tunes the HTTP side. The zero value of a field means its default.
type Config struct {
	// PollInterval is how often pages refresh the count (default 2s).
	PollInterval time.Duration
	// RequestTimeout bounds each request's work, database retries included
	// (default 3s); it must stay below any reverse proxy's timeout.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 4 KiB); larger ones get 413.
	MaxBodyBytes int64
	// ClientIPHeader, when set, is the header a trusted reverse proxy sets
	// to the client's address (e.g. X-Real-IP). Leave it empty when the
	// server is reachable directly: the header would be spoofable.
	ClientIPHeader string
	// TrustedProxies limits ClientIPHeader to requests from these CIDR
	// prefixes (e.g. "127.0.0.1/32"); empty trusts any peer.
	TrustedProxies []string
}

func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 3 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 10
	}
	return c
}

// counterName is the counter the page shows; the table holds named counters
// so more can come without a schema change.
const counterName = "main"

type server struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	static *staticFiles
	assets views.Assets
	mux    *chi.Mux

	lastPoll atomic.Pointer[renderedPoll]
}

// NewServer returns the whole HTTP handler: routes, middleware and the
// static files in staticFS (served under /static/).
func NewServer(cfg Config, store Store, staticFS fs.FS, htmxFile string, log *slog.Logger) (http.Handler, error) {
	st, err := loadStatic(staticFS)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{htmxFile, "style.css", "favicon.svg"} {
		if !st.has(name) {
			return nil, fmt.Errorf("static file %q is missing", name)
		}
	}
	s := &server{
		cfg:    cfg.withDefaults(),
		store:  store,
		log:    log,
		static: st,
		assets: views.Assets{
			HTMX:    "/static/" + htmxFile,
			CSS:     "/static/style.css",
			Favicon: "/static/favicon.svg",
		},
	}
	if err := s.routes(); err != nil {
		return nil, err
	}
	return s.mux, nil
}
