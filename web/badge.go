package web

import (
	"cmp"
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
// anything is counted. Whatever goes wrong, it still answers a badge, with
// the error's status, as shields.io does: an <img> of an HTML error page is
// a broken image, which tells the page's reader and its author nothing.
func (s *server) badge(w http.ResponseWriter, r *http.Request) error {
	name, nameErr := counterOf(r)
	p, err := badgeParamsOf(r.URL.RawQuery)
	err = cmp.Or(nameErr, err) // the name is checked first
	var c db.Counts
	if err == nil {
		if p.count && r.Method != http.MethodHead {
			c, err = s.view(r, name)
		} else {
			c, err = s.store.Counts(r.Context(), name)
		}
	}
	status := http.StatusOK
	var b views.Badge
	if err == nil {
		b = views.CountBadge(p.label, p.figure.of(c), p.abbr, p.look)
	} else {
		noteError(r, err)
		status, b = p.errorBadge(err)
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

// errorBadge says in a word what went wrong, in the error colour, with the
// label and look of the parameters that are valid. A request's error
// (4xx) adds its message to the title, which a browser opening the URL
// shows as the tab's title: it says what to fix in the URL. A failure of
// ours has nothing to fix there.
func (p badgeParams) errorBadge(err error) (int, views.Badge) {
	status, msg := problem(err)
	look := p.look
	look.Color = views.BadgeErrorColor
	b := views.NewBadge(p.label, badgeErrorText(status), look)
	if status < 500 {
		b.Title += " — " + msg
	}
	return status, b
}

func badgeErrorText(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusNotFound:
		return "not found"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}

// badgeParams are a badge's query parameters, checked.
type badgeParams struct {
	label       string
	figure      badgeFigure
	look        views.BadgeLook
	count, abbr bool
}

// badgeFigure is a figure a badge can show (show=): its name, its default
// label, and where it is in the counts.
type badgeFigure struct {
	show, label string
	of          func(db.Counts) int64
}

// badgeFigures are the figures, the default first. Visitors are today's:
// the label says so, as a badge on a README reads as all-time.
var badgeFigures = []badgeFigure{
	{"views", "views", func(c db.Counts) int64 { return c.Total }},
	{"visitors", "visitors today", func(c db.Counts) int64 { return c.Visitors }},
	{"today", "today", func(c db.Counts) int64 { return c.Views }},
}

// badgeKeys are the parameters a badge takes.
var badgeKeys = []string{"label", "color", "labelColor", "count", "show", "abbr", "style"}

// badgeParamsOf checks the query. A parameter given is checked even when
// empty; unknown ones are ignored, since READMEs add their own to bust
// caches (?v=2). The error is the first bad parameter's; the parameters
// returned with it are the valid ones and defaults, for the error badge.
func badgeParamsOf(rawQuery string) (badgeParams, error) {
	p := badgeParams{figure: badgeFigures[0], label: badgeFigures[0].label, count: true,
		look: views.BadgeLook{LabelColor: views.DefaultBadgeLabelColor, Color: views.DefaultBadgeColor}}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return p, errorf(http.StatusBadRequest, "The query string is not valid: separate parameters with & and escape special characters (%XX).")
	}
	// All are checked (cmp.Or's arguments are all evaluated), so the error
	// badge has every valid one; a bad one leaves its default.
	err = cmp.Or(
		badgeGivenOnce(q),
		badgeFigureOf(q, &p.figure),
		badgeFlag(q, "count", &p.count),
		badgeFlag(q, "abbr", &p.abbr),
		badgeStyle(q, &p.look.Style),
		badgeColor(q, "color", &p.look.Color),
		badgeColor(q, "labelColor", &p.look.LabelColor),
	)
	p.label = p.figure.label // each figure's own name is its default label
	return p, cmp.Or(err, badgeLabel(q, &p.label))
}

func badgeGivenOnce(q url.Values) error {
	for _, k := range badgeKeys {
		if len(q[k]) > 1 {
			return errorf(http.StatusBadRequest, k+" is given more than once.")
		}
	}
	return nil
}

func badgeFigureOf(q url.Values, f *badgeFigure) error {
	if !q.Has("show") {
		return nil
	}
	names := make([]string, len(badgeFigures))
	for i, fig := range badgeFigures {
		if fig.show == q.Get("show") {
			*f = fig
			return nil
		}
		names[i] = fig.show
	}
	return errorf(http.StatusBadRequest, "show must be "+orList(names)+".")
}

// badgeFlag is a parameter of 0 or 1.
func badgeFlag(q url.Values, k string, v *bool) error {
	if !q.Has(k) {
		return nil
	}
	switch q.Get(k) {
	case "0":
		*v = false
	case "1":
		*v = true
	default:
		return errorf(http.StatusBadRequest, k+" must be 0 or 1.")
	}
	return nil
}

func badgeStyle(q url.Values, style *views.BadgeStyle) error {
	if !q.Has("style") {
		return nil
	}
	s, ok := views.BadgeStyleOf(q.Get("style"))
	if !ok {
		return errorf(http.StatusBadRequest, "style must be "+orList(views.BadgeStyleNames())+".")
	}
	*style = s
	return nil
}

func badgeColor(q url.Values, k string, fill *string) error {
	if !q.Has(k) {
		return nil
	}
	c, ok := views.BadgeColor(q.Get(k))
	if !ok {
		return errorf(http.StatusBadRequest, k+" must be "+views.BadgeColorRule+".")
	}
	*fill = c
	return nil
}

func badgeLabel(q url.Values, label *string) error {
	if !q.Has("label") {
		return nil
	}
	l := q.Get("label")
	if !utf8.ValidString(l) || l == "" || utf8.RuneCountInString(l) > maxBadgeLabel {
		return errorf(http.StatusBadRequest, labelRule)
	}
	// Before the check of each character, so a label of zero-width
	// characters alone is told what is wrong with it as a whole.
	if !strings.ContainsFunc(l, visible) {
		return errorf(http.StatusBadRequest, "label must have a visible character, not only spaces, blanks, fillers, zero-width characters or combining marks.")
	}
	if !printableLabel(l) {
		return errorf(http.StatusBadRequest, labelRule)
	}
	*label = l
	return nil
}

// orList is "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// labelRule is what a label must be, said when it is not.
var labelRule = "label must be 1 to " + strconv.Itoa(maxBadgeLabel) + " printable characters."

// printableLabel allows letters, marks, digits, punctuation, symbols and
// spaces of any script; no control or format characters (such as bidi
// overrides or zero-width ones), which could disguise what the badge says,
// even among visible ones.
func printableLabel(s string) bool {
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}

// visible is false for a character that draws nothing by itself: spaces
// (unicode.IsSpace, Zs), the blanks that are letters or symbols to Unicode
// (the braille blank; the Hangul fillers, which are default-ignorable like
// the zero-width characters and the rest of Cf), and marks (Mn, Mc, Me,
// variation selectors), which draw only on a base. A label needs one
// visible character; the others are kept beside it as they are, since
// stripping marks or spaces would change the text of many scripts.
func visible(r rune) bool {
	switch {
	case unicode.IsSpace(r), unicode.Is(unicode.Zs, r), unicode.IsMark(r), r == '\u2800',
		unicode.Is(unicode.Cf, r), unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r),
		unicode.Is(unicode.Variation_Selector, r):
		return false
	}
	return true
}
