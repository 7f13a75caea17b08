package web

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/a-h/templ"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/views"
)

// chartDays is how many days the counter page's chart shows.
const chartDays = 30

// counterPage is /c/{name}: like the home page (a view counts), with
// today's figures, the chart of the last days and snippets to copy.
func (s *server) counterPage(w http.ResponseWriter, r *http.Request) error {
	name, err := counterOf(r)
	if err != nil {
		return err
	}
	if _, err := s.pageShown(r, name); err != nil {
		return err
	}
	c, err := s.pageView(r, name)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, s.counterPageView(r, name, s.counterView(r, c), c.Switches, s.chart(r, name)))
}

// chart is the chart of a counter's last days. The view is counted and
// its figures are right: a failure to read the history only leaves the
// chart out, saying so.
func (s *server) chart(r *http.Request, name string) views.Chart {
	to := s.store.Today()
	from := to.AddDate(0, 0, -(chartDays - 1))
	days, err := s.store.Days(r.Context(), name, from, to)
	if err != nil {
		noteError(r, err)
		return views.Chart{Unavailable: true}
	}
	return chartOf(db.FillDays(days, from, to))
}

// counterPageView is the counter page around its fragment v.
func (s *server) counterPageView(r *http.Request, name string, v views.Counter, sw db.Switches, chart views.Chart) templ.Component {
	p := views.CounterPage{
		Assets:          s.assets,
		Name:            name,
		Path:            namedPath(name),
		Counter:         v,
		DontCount:       dontCount(r),
		DontCountAction: dontCountPath,
		Chart:           chart,
	}
	if !sw.NoPlusOne {
		p.Hit = hitPath(name) + "?" + pageParam
	}
	base := s.baseURL(r)
	p.Badge = "[![" + name + " views](" + base + badgePath(name) + ")](" + base + counterPath(name) + ")"
	p.BadgePreview = badgePath(name) + "?count=0"
	for _, e := range embedSnippets {
		p.Embeds = append(p.Embeds, views.Snippet{ID: e.id, Label: e.label, Code: fmt.Sprintf(
			`<iframe src="%s%s?%s" title="%s hit counter" width="%d" height="%d" style="border:0" loading="lazy"></iframe>`,
			base, embedPath(name), e.options.query(), name, e.width, e.height)})
	}
	p.JSON = base + apiPath(name)
	return views.CounterPageView(p)
}

func chartOf(days []db.Day) views.Chart {
	var c views.Chart
	for _, d := range days {
		c.Days = append(c.Days, views.ChartDay{
			Date:     d.Day.Format(time.DateOnly),
			Label:    d.Day.Format("Jan 2"),
			Views:    d.Views,
			Visitors: d.Visitors,
		})
	}
	return c
}

// baseURL is this server's address as the client reached it, for the
// snippets: the Host header, with https when the request came over TLS or
// a trusted proxy says it did.
func (s *server) baseURL(r *http.Request) string {
	scheme := "http"
	if s.overHTTPS(r) {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host}).String()
}

// dontCount sets or clears the cookie that stops this browser's views from
// counting: only on this explicit request (the form on the counter page).
func (s *server) dontCount(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	back := r.PostForm.Get("back")
	if _, ok := counterOfPath(back); !ok {
		return errorf(http.StatusBadRequest, "The form names no counter page to return to.")
	}
	c := &http.Cookie{
		Name:     dontCountCookie,
		Value:    "1",
		Path:     "/",
		MaxAge:   10 * 365 * 24 * 60 * 60,
		HttpOnly: true,
		Secure:   s.overHTTPS(r),
		SameSite: http.SameSiteLaxMode,
	}
	switch r.PostForm.Get("count") {
	case "no":
	case "yes":
		c.Value, c.MaxAge = "", -1
	default:
		return errorf(http.StatusBadRequest, "The form must say count=yes or count=no.")
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, back+"?"+countedParam, http.StatusSeeOther)
	return nil
}
