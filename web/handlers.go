package web

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// countedParam marks the page a no-JavaScript click redirects to: that view
// shows the hit the click just added instead of counting another one.
const countedParam = "counted"

// pageParam marks the requests of a counter's own page, its poll and its
// +1: their answers carry today's bots and the chart (LiveFragment).
const pageParam = "page"

// onPage tells a request of a counter's own page.
func (s *server) onPage(r *http.Request) bool {
	if _, k := s.routeOf(r); k == counterPageRoute {
		return true
	}
	return r.URL.Query().Has(pageParam)
}

// switchesOf are the owner's switches of a counter (db.Switches); an
// unknown one has the defaults, since counting it may create it
// (AUTO_CREATE) and otherwise answers its own 404.
func (s *server) switchesOf(r *http.Request, name string) (db.Switches, error) {
	c, err := s.store.Counts(r.Context(), name)
	if errors.Is(err, db.ErrNotFound) {
		return db.Switches{}, nil
	}
	return c.Switches, err
}

// pageShown refuses the page of a counter whose owner switched it off.
func (s *server) pageShown(r *http.Request, name string) (db.Switches, error) {
	sw, err := s.switchesOf(r, name)
	if err == nil && sw.NoPage {
		err = errorf(http.StatusNotFound, "This counter has no public page.")
	}
	return sw, err
}

// counterOf is the counter a request is about: the {name} of /c/{name}/…,
// or the main counter. A name outside the rule is refused before any
// storage is asked.
func counterOf(r *http.Request) (string, error) {
	// Routes without {name} are the main counter's. One with it and an
	// empty name (/c//hit) is not: it must not count the main counter.
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || !slices.Contains(rctx.URLParams.Keys, "name") {
		return mainCounter, nil
	}
	name := chi.URLParam(r, "name")
	if !db.ValidName(name) {
		return "", errorf(http.StatusBadRequest, "That is not a valid counter name: "+db.NameRule+".")
	}
	return name, nil
}

// index is the home page. Viewing it counts a hit and shows the counted
// value; HEAD and the redirect after a no-JavaScript click only read.
func (s *server) index(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.pageShown(r, mainCounter); err != nil {
		return err
	}
	c, err := s.pageView(r, mainCounter)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, s.homeView(s.counterView(r, c), c.Switches))
}

// homeView is the front page around its fragment v.
func (s *server) homeView(v views.Counter, sw db.Switches) templ.Component {
	p := views.Page{Assets: s.assets, Counter: v}
	if !sw.NoPlusOne {
		p.Hit = homeHitPath
	}
	return views.HomePage(p)
}

// pageView counts a page view, or only reads for HEAD and the page a
// no-JavaScript click was redirected to.
func (s *server) pageView(r *http.Request, name string) (db.Counts, error) {
	if r.Method == http.MethodHead || r.URL.Query().Has(countedParam) {
		return s.store.Counts(r.Context(), name)
	}
	return s.view(r, name)
}

// hit is the +1 button. htmx gets the new counter fragment; a plain form
// post (JavaScript off) is redirected back to the page (Post/Redirect/Get).
func (s *server) hit(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	if err := parseForm(r); err != nil {
		return err
	}
	w.Header().Add("Vary", "HX-Request")
	sw, err := s.switchesOf(r, name)
	if err != nil {
		return err
	}
	if sw.NoPlusOne {
		return errorf(http.StatusForbidden, "The owner has switched +1 off for this counter.")
	}
	c, err := s.view(r, name)
	if err != nil {
		return err
	}
	if isHTMX(r) {
		return s.render(w, r, http.StatusOK, s.liveView(r, name, c))
	}
	back := counterPath(name) + "?" + countedParam
	if q := r.URL.Query(); q.Has("embed") {
		// Back to the embed as it was; bad options are only lost looks.
		o, _ := parseEmbedOptions(q)
		o.button = true
		back = embedPath(name) + "?" + o.query() + "&" + countedParam
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// count is the polled fragment; it only reads. An unchanged count costs
// the poller a 304 and no body (ETag). Every poller asks for the same few
// bytes until the count changes, so the last rendering is kept.
func (s *server) count(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	c, err := s.store.Counts(r.Context(), name)
	if err != nil {
		return err
	}
	key := name
	if s.onPage(r) {
		key += "?" + pageParam
	}
	last := s.lastPolls.get(key)
	if last == nil || last.counts != c {
		body, err := s.renderBytes(w, r, s.liveView(r, name, c))
		if err != nil {
			return err
		}
		last = &renderedPoll{key: key, counts: c, body: body, etag: etagOf(body)}
		s.lastPolls.put(last)
	}
	s.send(w, r, http.StatusOK, last.body, last.etag)
	return nil
}

// liveView is what a click or a poll swaps: the counter, and on the
// counter's own page its chart too.
func (s *server) liveView(r *http.Request, name string, c db.Counts) templ.Component {
	v := s.counterView(r, c)
	if v.ShowBots {
		return views.LiveFragment(v, s.chart(r, name))
	}
	return views.CounterFragment(v)
}

// renderedPoll is a poll answer as sent: the same for every poller of the
// same counts.
type renderedPoll struct {
	key    string // the counter, with "?page" for its page's answer
	counts db.Counts
	body   []byte
	etag   string
}

// pollSlots bounds pollCache: about 1 kB each, 4 MB in all, however many
// counters are polled.
const pollSlots = 4096

// pollCache keeps the last poll answer of recently polled counters in a
// table of pollSlots entries, each key in the slot its hash picks: a
// counter evicts the one sharing its slot, and is rendered again when
// next polled. The hash is seeded per process, so no one can pick names
// that share a slot on purpose.
type pollCache struct {
	seed  maphash.Seed
	slots [pollSlots]atomic.Pointer[renderedPoll]
}

func newPollCache() *pollCache { return &pollCache{seed: maphash.MakeSeed()} }

func (c *pollCache) slot(key string) *atomic.Pointer[renderedPoll] {
	return &c.slots[maphash.String(c.seed, key)%pollSlots]
}

// get returns key's last answer, if its slot still has it.
func (c *pollCache) get(key string) *renderedPoll {
	if p := c.slot(key).Load(); p != nil && p.key == key {
		return p
	}
	return nil
}

func (c *pollCache) put(p *renderedPoll) { c.slot(p.key).Store(p) }

// counterView is a counter's live fragment. The main counter shows its
// total as it always did; named counters show today's figures too.
func (s *server) counterView(r *http.Request, c db.Counts) views.Counter {
	name, err := counterOf(r)
	if err != nil {
		name = mainCounter // a refused name has no fragment of its own
	}
	v := views.Counter{Hits: c.Total, PollEvery: s.cfg.PollInterval, Poll: pollPath(name)}
	if name != mainCounter {
		v.Today = &views.Today{Views: c.Views, Visitors: c.Visitors, Bots: c.Bots}
		if s.onPage(r) {
			v.Poll += "?" + pageParam
			v.ShowBots = true
		}
	}
	return v
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
	if s.cfg.Draining != nil && s.cfg.Draining() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: shutting down\n"))
		return
	}
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
	if len(allow) == 0 {
		// No method at all (CONNECT host:port, PRI *): nothing is here.
		return s.notFound(w, r)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return errorf(http.StatusMethodNotAllowed, "This address does not accept "+r.Method+" requests.")
}

func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// parseForm reads a form body and says what went wrong in the client's
// terms: too large (413), too slow (408: the server's read deadline
// passed while it waited for the body), or not a form (400).
func parseForm(r *http.Request) error {
	err := r.ParseForm()
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "The request body is too large.")
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w (%w)", errorf(http.StatusRequestTimeout, "The request body came too slowly."), err)
	}
	return errorf(http.StatusBadRequest, "The request body is not a valid form.")
}
