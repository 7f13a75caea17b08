package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/a-h/templ"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// embed is /c/{name}/embed: the counter alone, for an iframe on the
// owner's pages. Viewing it counts when the browser will show it (see
// shownByBrowser), unless ?count=0 (a second embed of the same counter on
// one page) or it is the page a no-JavaScript click returned to. Its look
// is embedOptions. Only the origins in EmbedOrigins (and this one) may
// frame it; every other page refuses any framing.
func (s *server) embed(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	count, err := flagParam(q, "count", true)
	if err != nil {
		return err
	}
	o, err := parseEmbedOptions(q)
	if err != nil {
		return err
	}
	var c db.Counts
	if count && s.shownByBrowser(r) {
		c, err = s.pageView(r, name)
	} else {
		c, err = s.store.Counts(r.Context(), name)
	}
	if err != nil {
		return err
	}
	o.button = o.button && !c.NoPlusOne
	s.allowFraming(w)
	return s.render(w, r, http.StatusOK, s.embedView(name, o, s.counterView(r, c)))
}

// embedView is the embed around its fragment v (see allowFraming).
func (s *server) embedView(name string, o embedOptions, v views.Counter) templ.Component {
	e := views.Embed{Assets: s.assets, Name: name, Counter: v, Theme: o.theme, Compact: o.compact}
	if o.button {
		o.button = false // the button posts the rest; its redirect adds it back
		e.Hit = hitPath(name) + "?embed"
		if q := o.query(); q != "" {
			e.Hit += "&" + q
		}
	}
	return views.EmbedView(e)
}

// embedOptions are an embed's looks: ?button (or button=1) adds +1,
// ?compact shows the number alone, ?theme=light|dark fixes the colours
// (auto, the default, follows the visitor's preference).
type embedOptions struct {
	button, compact bool
	theme           string
}

func parseEmbedOptions(q url.Values) (embedOptions, error) {
	var o embedOptions
	var err error
	if o.button, err = flagParam(q, "button", false); err != nil {
		return o, err
	}
	if o.compact, err = flagParam(q, "compact", false); err != nil {
		return o, err
	}
	switch o.theme = q.Get("theme"); o.theme {
	case "":
		o.theme = "auto"
	case "auto", "light", "dark":
	default:
		return o, errorf(http.StatusBadRequest, "theme must be light, dark or auto.")
	}
	return o, nil
}

// query is o as an embed's query string, without the defaults.
func (o embedOptions) query() string {
	var q []string
	if o.button {
		q = append(q, "button")
	}
	if o.compact {
		q = append(q, "compact")
	}
	if o.theme != "auto" {
		q = append(q, "theme="+o.theme)
	}
	return strings.Join(q, "&")
}

// flagParam reads an on/off parameter: absent is def; present without a
// value ("?button") or 1 is on, 0 is off; anything else is bad input.
func flagParam(q url.Values, name string, def bool) (bool, error) {
	if !q.Has(name) {
		return def, nil
	}
	switch q.Get(name) {
	case "", "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, errorf(http.StatusBadRequest, name+" must be 0 or 1.")
}

// embedSnippets are the iframes the counter page offers, each at the size
// its content fits without scrolling (the browser test loads them as
// given, from another origin): the one home of these sizes.
var embedSnippets = []struct {
	id, label     string
	options       embedOptions
	width, height int
}{
	{"snippet-iframe", "Embed (HTML): the figures and +1", embedOptions{button: true, theme: "auto"}, 320, 120},
	{"snippet-iframe-compact", "Embed, compact: the total and +1", embedOptions{button: true, compact: true, theme: "auto"}, 240, 56},
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

// shownByBrowser tells whether the browser will show this embed: opened
// by itself, or framed by this origin or one of EmbedOrigins. Framed by
// any other site, frame-ancestors makes the browser show an error page
// instead, and a view nobody saw must not count. The framing page's origin
// is Sec-Fetch-Site's same-origin or, across sites, the Referer's (whose
// default policy sends the origin); a page that sends no Referer cannot
// be told from a refused one, so it does not count. Clients without Fetch
// Metadata (old browsers, scripts) count unless their Referer names a
// site that may not frame the embed.
func (s *server) shownByBrowser(r *http.Request) bool {
	ref, err := url.Parse(r.Header.Get("Referer"))
	if err != nil || ref.Host == "" {
		ref = &url.URL{}
	}
	origin := ref.Scheme + "://" + ref.Host
	allowed := slices.ContainsFunc(s.cfg.EmbedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "iframe", "frame":
		return r.Header.Get("Sec-Fetch-Site") == "same-origin" || allowed
	case "":
		return ref.Host == "" || strings.EqualFold(ref.Host, r.Host) || allowed
	default: // a document of its own: a visitor opened the embed's address
		return true
	}
}

// frameAncestors is the CSP source list of who may frame an embed.
func (s *server) frameAncestors() string {
	return strings.Join(append([]string{"'self'"}, s.cfg.EmbedOrigins...), " ")
}
