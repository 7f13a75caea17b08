package web

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hitcounter/hitcounter/db"
)

// routes lists every route and the middleware in front of them, in order,
// each route with its kind.
func (s *server) routes() {
	r := chi.NewRouter()
	s.mux = r
	s.kinds = map[string]routeKind{}

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
	s.get("/", homeRoute, s.handle(s.index))
	s.post("/hit", homeRoute, s.handle(s.hit))
	s.get("/count", pollRoute, s.handle(s.count))

	// Named counters: a page, its +1 and poll, a badge and an embed.
	s.get("/c/{name}", counterPageRoute, s.handle(s.counterPage))
	s.post("/c/{name}/hit", counterHitRoute, s.handle(s.hit))
	s.get("/c/{name}/count", pollRoute, s.handle(s.count))
	s.get("/c/{name}/badge.svg", counterRoute, s.handle(s.badge))
	s.get("/c/{name}/embed", embedRoute, s.handle(s.embed))
	s.post("/dont-count", plainRoute, s.handle(s.dontCount))

	// The JSON API: reads open to every origin, writes with a token.
	s.get("/api/counters/{name}", counterRoute, s.api(s.apiCounter))
	s.get("/api/counters/{name}/days", counterRoute, s.api(s.apiDays))
	s.post("/api/counters/{name}/hit", counterRoute, s.api(s.apiHit))

	s.get("/healthz", quietRoute, s.healthz)
	s.get("/readyz", quietRoute, s.readyz)
	s.get("/static/*", quietRoute, s.handle(s.serveStatic))
}

// routeKind is what a route is about. It decides how the route's errors
// are shown (problemView) and whether its answers are logged at info
// (logRequests).
type routeKind uint8

const (
	plainRoute       routeKind = iota // about no counter: errors on an error page; also no route at all
	quietRoute                        // probes and static files: plain, and logged at debug unless they fail
	counterRoute                      // about one counter, not a page of its own: badge, API
	pollRoute                         // a counter's poll, every few seconds per open page: logged at debug unless it fails
	homeRoute                         // the home page and its +1: a failure of ours shows the page with the problem
	counterPageRoute                  // a named counter's page: likewise
	counterHitRoute                   // a named counter's +1: likewise, its page
	embedRoute                        // a counter's embed: likewise, the embed
)

// quiet tells the routes that every open page asks all the time, or that
// probes and browsers do: at info they would drown the log.
func (k routeKind) quiet() bool { return k == quietRoute || k == pollRoute }

// aboutCounter tells the routes whose 404 can mean that their counter is
// missing.
func (k routeKind) aboutCounter() bool { return k != plainRoute && k != quietRoute }

func (s *server) get(pattern string, k routeKind, h http.HandlerFunc) {
	s.route(http.MethodGet, pattern, k, h)
}

func (s *server) post(pattern string, k routeKind, h http.HandlerFunc) {
	s.route(http.MethodPost, pattern, k, h)
}

// route registers h for method and pattern, and the route's kind under its
// pattern: what chi's route context names the route a request took.
func (s *server) route(method, pattern string, k routeKind, h http.HandlerFunc) {
	if old, ok := s.kinds[pattern]; ok && old != k {
		panic("route " + pattern + " registered with two kinds")
	}
	s.kinds[pattern] = k
	s.mux.Method(method, pattern, h)
}

// routeOf is the pattern of the route r took and its kind: "" and
// plainRoute before routing or when no route matched.
func (s *server) routeOf(r *http.Request) (string, routeKind) {
	rc := chi.RouteContext(r.Context())
	if rc == nil {
		return "", plainRoute
	}
	p := rc.RoutePattern()
	return p, s.kinds[p]
}

// The paths of the routes above, for links and redirects: built here only.
// The main counter's page and poll are at the root (/, /count); the rest of
// it, its embed and the embed's +1 included, is under /c/main like any
// counter's.

const (
	namedPrefix   = "/c/"
	homeHitPath   = "/hit"
	dontCountPath = "/dont-count"
	apiPrefix     = "/api/"
)

// counterPath is the counter's page; the main counter's is /.
func counterPath(name string) string {
	if name == mainCounter {
		return "/"
	}
	return namedPath(name)
}

// namedPath is the page of a counter under its name, /c/NAME.
func namedPath(name string) string { return namedPrefix + name }

// counterOfPath is the counter whose page path is (counterPath or
// namedPath); ok is false for any other path.
func counterOfPath(path string) (name string, ok bool) {
	if path == "/" {
		return mainCounter, true
	}
	name, ok = strings.CutPrefix(path, namedPrefix)
	return name, ok && db.ValidName(name)
}

// pollPath is what the counter's fragment polls.
func pollPath(name string) string {
	if name == mainCounter {
		return "/count"
	}
	return namedPath(name) + "/count"
}

// hitPath is where a named page or an embed's +1 posts (the home page's is
// homeHitPath).
func hitPath(name string) string { return namedPath(name) + "/hit" }

func badgePath(name string) string { return namedPath(name) + "/badge.svg" }

func embedPath(name string) string { return namedPath(name) + "/embed" }

func apiPath(name string) string { return apiPrefix + "counters/" + name }

func staticPath(file string) string { return "/static/" + file }
