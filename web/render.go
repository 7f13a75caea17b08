package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// handlerFunc is a handler that returns its error instead of writing it, so
// one place (handle) turns errors into responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc: every error a handler returns ends here,
// noted for the request log and answered through the one problem table.
func (s *server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		noteError(r, err)
		if isAPI(r) {
			s.sendProblem(w, r, err)
			return
		}
		status, view := s.problemView(w, r, err)
		if err := s.render(w, r, status, view); err != nil {
			noteError(r, err)
		}
	}
}

// problemView is how an error is shown. htmx swaps error answers too
// (htmx 4), and its only target is the counter: it gets the counter
// showing the message, still polling. A counter's page or embed whose
// storage failed is shown with the message in place of the count, and
// keeps polling, so it recovers by itself: the route's kind (routes.go)
// tells which. Anything else is an error page.
func (s *server) problemView(w http.ResponseWriter, r *http.Request, err error) (int, templ.Component) {
	status, msg := problem(err)
	v := s.counterView(r, db.Counts{})
	v.Problem, v.Today = msg, nil
	name, nameErr := counterOf(r)
	_, kind := s.routeOf(r)
	switch {
	case isHTMX(r):
		return status, views.CounterFragment(v)
	case status < 500 || nameErr != nil:
	case kind == homeRoute:
		return status, s.homeView(v, db.Switches{})
	case kind == counterPageRoute || kind == counterHitRoute:
		return status, s.counterPageView(r, name, v, db.Switches{}, views.Chart{Unavailable: true})
	case kind == embedRoute:
		s.allowFraming(w)
		o, _ := parseEmbedOptions(r.URL.Query()) // a bad one is a 400, not here
		return status, s.embedView(name, o, v)
	}
	e := views.Error{Assets: s.assets, Title: http.StatusText(status), Message: msg, Home: counterPath(mainCounter)}
	if status == http.StatusNotFound && nameErr == nil && name == mainCounter && kind.aboutCounter() {
		// The front page is the main counter's: when that is what is
		// missing, a link back to it would lead here again.
		e.Home = ""
	}
	return status, views.ErrorPage(e)
}

// render writes a component with a status. It renders into a buffer first,
// so a failing component never sends half a page. The answer is never
// stored: counts change all the time.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	body, err := s.renderBytes(w, r, c)
	if err != nil {
		return err
	}
	s.send(w, r, status, body, "")
	return nil
}

// renderBytes renders c, or answers 500 and returns the error.
func (s *server) renderBytes(w http.ResponseWriter, r *http.Request, c templ.Component) ([]byte, error) {
	var buf bytes.Buffer
	// Not the request's context: when its deadline has passed, the answer
	// that says so must still render (templ stops on a done context).
	if err := c.Render(context.WithoutCancel(r.Context()), &buf); err != nil {
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return nil, fmt.Errorf("render: %w", err)
	}
	return buf.Bytes(), nil
}

// send writes a rendered page or fragment. With an etag, the answer is one
// browsers may keep but must revalidate each time (no-cache), and a request
// whose If-None-Match matches gets 304 with no body; without, it is never
// stored.
func (s *server) send(w http.ResponseWriter, r *http.Request, status int, body []byte, etag string) {
	cache := "no-store"
	if etag != "" {
		cache = "no-cache"
	}
	s.sendAs(w, r, status, "text/html; charset=utf-8", cache, body, etag)
}

// sendAs writes body with its type and caching; with an etag, a matching
// If-None-Match gets 304 and no body.
func (s *server) sendAs(w http.ResponseWriter, r *http.Request, status int, ctype, cacheControl string, body []byte, etag string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cacheControl)
	if status == http.StatusServiceUnavailable {
		// As soon as the page's own poll asks again.
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(s.cfg.PollInterval.Seconds()))))
	}
	if etag != "" {
		h.Set("ETag", etag)
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := w.Write(body); err != nil {
		// The client went away; nothing more to tell it.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "write response", slog.Any("err", err))
	}
}

// etagOf is a strong ETag of a body: a 64-bit FNV-1a hash, enough to tell
// one rendering of a fragment from the next.
func etagOf(body []byte) string {
	h := fnv.New64a()
	_, _ = h.Write(body)
	var b [8]byte
	return `"` + base64.RawURLEncoding.EncodeToString(h.Sum(b[:0])) + `"`
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110, 13.1.2):
// "*" or any listed tag equal to etag once W/ is ignored. nginx turns a
// strong ETag weak when it compresses the answer.
func etagMatches(ifNoneMatch, etag string) bool {
	for tag := range strings.SplitSeq(ifNoneMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}
