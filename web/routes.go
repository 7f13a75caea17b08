package web

import (
	"fmt"
	"net/netip"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// routes lists every route and the middleware in front of them, in order.
func (s *server) routes() error {
	r := chi.NewRouter()
	s.mux = r

	r.Use(middleware.RequestID)
	if s.cfg.ClientIPHeader != "" {
		for _, p := range s.cfg.TrustedProxies {
			if _, err := netip.ParsePrefix(p); err != nil {
				return fmt.Errorf("trusted proxy %q: %w", p, err)
			}
		}
		r.Use(middleware.ClientIPFromHeader(s.cfg.ClientIPHeader, s.cfg.TrustedProxies...))
	}
	r.Use(s.logRequests)
	r.Use(s.recoverPanics)
	r.Use(securityHeaders)
	r.Use(s.refuseCrossOrigin)
	r.Use(s.limitBody)
	r.Use(s.deadline)
	r.Use(middleware.GetHead)

	r.NotFound(s.handle(s.notFound))
	r.MethodNotAllowed(s.handle(s.methodNotAllowed))

	r.Get("/", s.handle(s.index))
	r.Post("/hit", s.handle(s.hit))
	r.Get("/count", s.handle(s.count))
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/static/*", s.handle(s.serveStatic))
	return nil
}
