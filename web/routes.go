package web

import (
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// routes lists every route and the middleware in front of them, in order.
func (s *server) routes() error {
	r := chi.NewRouter()
	s.mux = r

	r.Use(requestID)
	if s.cfg.ClientIPHeader != "" {
		trusted := make([]string, len(s.cfg.TrustedProxies))
		for i, p := range s.cfg.TrustedProxies {
			trusted[i] = p.String()
		}
		r.Use(middleware.ClientIPFromHeader(s.cfg.ClientIPHeader, trusted...))
	}
	r.Use(s.logRequests)
	r.Use(s.recoverPanics)
	r.Use(securityHeaders)
	r.Use(preflightAPI)
	r.Use(s.refuseCrossOrigin)
	r.Use(s.limitBody)
	r.Use(s.deadline)
	r.Use(middleware.GetHead)

	r.NotFound(s.handle(s.notFound))
	r.MethodNotAllowed(s.handle(s.methodNotAllowed))

	// The home page: the main counter.
	r.Get("/", s.handle(s.index))
	r.Post("/hit", s.handle(s.hit))
	r.Get("/count", s.handle(s.count))

	// Named counters: a page, its +1 and poll, a badge and an embed.
	r.Get("/c/{name}", s.handle(s.counterPage))
	r.Post("/c/{name}/hit", s.handle(s.hit))
	r.Get("/c/{name}/count", s.handle(s.count))
	r.Get("/c/{name}/badge.svg", s.handle(s.badge))
	r.Get("/c/{name}/embed", s.handle(s.embed))
	r.Post("/dont-count", s.handle(s.dontCount))

	// The JSON API: reads open to every origin, writes with a token.
	r.Get("/api/counters/{name}", s.api(s.apiCounter))
	r.Get("/api/counters/{name}/days", s.api(s.apiDays))
	r.Post("/api/counters/{name}/hit", s.api(s.apiHit))

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/static/*", s.handle(s.serveStatic))
	return nil
}
