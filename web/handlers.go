package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/hitcounter/hitcounter/views"
)

// countedParam marks the page a no-JavaScript click redirects to: that view
// shows the hit the click just added instead of counting another one.
const countedParam = "counted"

// index is the page. Viewing it counts a hit and shows the counted value;
// HEAD and the redirect after a no-JavaScript click only read.
func (s *server) index(w http.ResponseWriter, r *http.Request) error {
	var (
		n   int64
		err error
	)
	if r.Method == http.MethodHead || r.URL.Query().Has(countedParam) {
		n, err = s.store.Count(r.Context(), counterName)
	} else {
		n, err = s.store.Increment(r.Context(), counterName)
	}
	return s.page(w, r, n, err)
}

// hit is the +1 button. htmx gets the new counter fragment; a plain form
// post (JavaScript off) is redirected back to the page (Post/Redirect/Get).
func (s *server) hit(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "The request body is too large.")
		}
		return errorf(http.StatusBadRequest, "The request body is not a valid form.")
	}
	n, err := s.store.Increment(r.Context(), counterName)
	w.Header().Add("Vary", "HX-Request")
	if isHTMX(r) {
		return s.fragment(w, r, n, err)
	}
	if err != nil {
		return s.page(w, r, n, err)
	}
	http.Redirect(w, r, "/?"+countedParam, http.StatusSeeOther)
	return nil
}

// count is the polled fragment; it only reads. An unchanged count costs
// the poller a 304 and no body (ETag). Every poller asks for the same few
// bytes until the count changes, so the last rendering is kept.
func (s *server) count(w http.ResponseWriter, r *http.Request) error {
	n, err := s.store.Count(r.Context(), counterName)
	if err != nil {
		return s.fragment(w, r, n, err)
	}
	p := s.lastPoll.Load()
	if p == nil || p.counter != counterName || p.hits != n {
		c, _ := s.counterView(r, n, nil)
		body, err := s.renderBytes(w, r, views.CounterFragment(c))
		if err != nil {
			return err
		}
		p = &renderedPoll{counter: counterName, hits: n, body: body, etag: etagOf(body)}
		s.lastPoll.Store(p)
	}
	s.send(w, r, http.StatusOK, p.body, p.etag)
	return nil
}

// renderedPoll is a poll answer as sent: the same for every poller of the
// same count.
type renderedPoll struct {
	counter string
	hits    int64
	body    []byte
	etag    string
}

// page renders the whole page; a storage failure shows in place of the count
// (with its status) and the page keeps polling, so it recovers by itself.
func (s *server) page(w http.ResponseWriter, r *http.Request, n int64, err error) error {
	c, status := s.counterView(r, n, err)
	return s.render(w, r, status, views.HomePage(views.Page{Assets: s.assets, Counter: c}))
}

func (s *server) fragment(w http.ResponseWriter, r *http.Request, n int64, err error) error {
	c, status := s.counterView(r, n, err)
	return s.render(w, r, status, views.CounterFragment(c))
}

// counterView turns a storage result into the counter's view model.
func (s *server) counterView(r *http.Request, n int64, err error) (views.Counter, int) {
	c := views.Counter{Hits: n, PollEvery: s.cfg.PollInterval}
	if err == nil {
		return c, http.StatusOK
	}
	noteError(r, err)
	status, msg := problem(err)
	c.Problem = msg
	return c, status
}

// healthz says the process is alive; it never touches the database, so a
// database outage does not get the process restarted.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz says whether requests can be served: database reachable, schema
// migrated.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.store.Ready(r.Context()); err != nil {
		noteError(r, err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: database unavailable or not migrated\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) error {
	return errorf(http.StatusNotFound, "There is no page at this address.")
}

// methodNotAllowed answers 405 with the Allow header listing the methods the
// path does take.
func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	if s.mux.Match(chi.NewRouteContext(), http.MethodGet, r.URL.Path) {
		allow = append(allow, http.MethodGet, http.MethodHead) // GetHead serves HEAD
	}
	if s.mux.Match(chi.NewRouteContext(), http.MethodPost, r.URL.Path) {
		allow = append(allow, http.MethodPost)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return errorf(http.StatusMethodNotAllowed, "This address does not accept "+r.Method+" requests.")
}

func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }
