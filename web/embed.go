package web

import (
	"net/http"
	"strings"

	"github.com/a-h/templ"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// embed is /c/{name}/embed: the counter alone, for an iframe on the
// owner's pages. Viewing it counts, unless ?count=0 (a second embed of the
// same counter on one page) or it is the page a no-JavaScript click
// returned to; ?button adds the +1 button. Only the origins in
// EmbedOrigins (and this one) may frame it; every other page refuses any
// framing.
func (s *server) embed(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	var c db.Counts
	switch r.URL.Query().Get("count") {
	case "", "1":
		c, err = s.pageView(r, name)
	case "0":
		c, err = s.store.Counts(r.Context(), name)
	default:
		return errorf(http.StatusBadRequest, "count must be 0 or 1.")
	}
	if err != nil {
		return err
	}
	s.allowFraming(w)
	return s.render(w, r, http.StatusOK, s.embedView(r, name, s.counterView(r, c)))
}

// embedView is the embed around its fragment v (see allowFraming).
func (s *server) embedView(r *http.Request, name string, v views.Counter) templ.Component {
	e := views.Embed{Assets: s.assets, Name: name, Counter: v}
	if r.URL.Query().Has("button") {
		e.Hit = "/c/" + name + "/hit?embed"
	}
	return views.EmbedView(e)
}

// allowFraming lets the owner's origins (and this one) frame an embed:
// CSP frame-ancestors instead of the 'none' every other page has, and no
// X-Frame-Options, which cannot list origins.
func (s *server) allowFraming(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", strings.Replace(contentSecurityPolicy,
		"frame-ancestors 'none'", "frame-ancestors "+s.frameAncestors(), 1))
	h.Del("X-Frame-Options")
}

// frameAncestors is the CSP source list of who may frame an embed.
func (s *server) frameAncestors() string {
	return strings.Join(append([]string{"'self'"}, s.cfg.EmbedOrigins...), " ")
}
