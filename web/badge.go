package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// badgeCacheControl forbids every cache to keep a badge, so GitHub's image
// proxy (Camo) fetches it, and it counts, on every view of a README.
const badgeCacheControl = "no-cache, no-store, must-revalidate, max-age=0"

// badgeCSP is stricter than the pages': the SVG needs nothing at all.
const badgeCSP = "default-src 'none'; frame-ancestors 'none'"

const maxBadgeLabel = 40 // characters

// badge is /c/{name}/badge.svg: the counter as an SVG badge for READMEs and
// pages. Fetching it counts a view, unless ?count=0 (several badges of one
// counter on a page) or HEAD. Every query parameter is checked before
// anything is counted. A storage failure still answers a badge, saying
// "unavailable" with the failure's status, so an image in a page does not
// turn into a broken one.
func (s *server) badge(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	p, err := badgeParamsOf(r.URL.RawQuery)
	if err != nil {
		return err
	}
	var c db.Counts
	if p.count && r.Method != http.MethodHead {
		c, err = s.view(r, name)
	} else {
		c, err = s.store.Counts(r.Context(), name)
	}
	status := http.StatusOK
	var b views.Badge
	switch {
	case err == nil:
		b = views.CountBadge(p.label, p.figure(c), p.abbr, p.labelColor, p.color)
	case isStorageFailure(err):
		noteError(r, err)
		status, _ = problem(err)
		b = views.NewBadge(p.label, badgeFailureText(status), p.labelColor, views.BadgeErrorColor)
	default:
		return err // not found: the error page says so
	}
	body, err := s.renderBytes(w, r, views.BadgeSVG(b))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Security-Policy", badgeCSP)
	h.Set("Expires", "0") // for HTTP/1.0 caches, which know no Cache-Control
	etag := ""
	if status == http.StatusOK {
		etag = etagOf(body)
	}
	s.sendAs(w, r, status, "image/svg+xml; charset=utf-8", badgeCacheControl, body, etag)
	return nil
}

func badgeFailureText(status int) string {
	if status == http.StatusServiceUnavailable {
		return "unavailable"
	}
	return "error"
}

// badgeParams are a badge's query parameters, checked.
type badgeParams struct {
	label, color, labelColor string
	show                     string // views, visitors or today
	count, abbr              bool
}

// figure is the number the badge shows.
func (p badgeParams) figure(c db.Counts) int64 {
	switch p.show {
	case "visitors":
		return c.Visitors
	case "today":
		return c.Views
	default:
		return c.Total
	}
}

// badgeParamsOf checks the query. A parameter given is checked even when
// empty; unknown ones are ignored, since READMEs add their own to bust
// caches (?v=2).
func badgeParamsOf(rawQuery string) (badgeParams, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return badgeParams{}, errorf(http.StatusBadRequest, "The query string is not valid: separate parameters with & and escape special characters (%XX).")
	}
	for _, k := range []string{"label", "color", "labelColor", "count", "show", "abbr"} {
		if len(q[k]) > 1 {
			return badgeParams{}, errorf(http.StatusBadRequest, k+" is given more than once.")
		}
	}
	p := badgeParams{show: "views", count: true, color: views.DefaultBadgeColor, labelColor: views.DefaultBadgeLabelColor}
	if q.Has("show") {
		switch p.show = q.Get("show"); p.show {
		case "views", "visitors", "today":
		default:
			return badgeParams{}, errorf(http.StatusBadRequest, "show must be views, visitors or today.")
		}
	}
	if p.count, err = badgeFlag(q, "count", true); err != nil {
		return badgeParams{}, err
	}
	if p.abbr, err = badgeFlag(q, "abbr", false); err != nil {
		return badgeParams{}, err
	}
	if p.color, err = badgeColor(q, "color", p.color); err != nil {
		return badgeParams{}, err
	}
	if p.labelColor, err = badgeColor(q, "labelColor", p.labelColor); err != nil {
		return badgeParams{}, err
	}
	p.label = p.show // each figure's own name is its default label
	if q.Has("label") {
		p.label = q.Get("label")
		if !validLabel(p.label) {
			return badgeParams{}, errorf(http.StatusBadRequest, "label must be 1 to "+strconv.Itoa(maxBadgeLabel)+" printable characters, not all spaces.")
		}
	}
	return p, nil
}

// badgeFlag is a parameter of 0 or 1.
func badgeFlag(q url.Values, k string, def bool) (bool, error) {
	if !q.Has(k) {
		return def, nil
	}
	switch q.Get(k) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, errorf(http.StatusBadRequest, k+" must be 0 or 1.")
}

func badgeColor(q url.Values, k, def string) (string, error) {
	if !q.Has(k) {
		return def, nil
	}
	fill, ok := views.BadgeColor(q.Get(k))
	if !ok {
		return "", errorf(http.StatusBadRequest, k+" must be a colour name ("+
			strings.Join(views.BadgeColorNames(), ", ")+") or 3 or 6 hex digits, like 4c1 or 44cc11.")
	}
	return fill, nil
}

// validLabel allows letters, marks, digits, punctuation, symbols and
// spaces of any script; no control or format characters (such as bidi
// overrides), which could disguise what the badge says.
func validLabel(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > maxBadgeLabel {
		return false
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}
