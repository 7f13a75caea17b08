package web

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hitcounter/hitcounter/db"
)

// The JSON API. Reads are open to every origin (CORS), since counts are
// public; the one write, POST /api/counters/{name}/hit, is for server-side
// callers with the API token.

// maxAPIDays bounds one /days request.
const maxAPIDays = 366

// apiDays is the JSON of /days: a counter's days in the wire vocabulary
// the CLI's export uses too (db/wire.go).
type apiDays struct {
	Name string       `json:"name"`
	From string       `json:"from"`
	To   string       `json:"to"`
	Days []db.DayJSON `json:"days"`
}

// apiProblem is an error in the API, as RFC 9457 problem details.
type apiProblem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

type apiFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// api adapts an apiFunc: its value becomes JSON, its error problem JSON
// through the one problem table.
func (s *server) api(h apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		v, err := h(w, r)
		if err != nil {
			noteError(r, err)
			s.sendProblem(w, r, err)
			return
		}
		s.sendJSON(w, r, http.StatusOK, "application/json", v)
	}
}

// sendProblem answers err as RFC 9457 problem JSON: every error under
// /api/, the middleware's (403 cross-site, 405, 413) included, so an API
// client never has to parse a page.
func (s *server) sendProblem(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	status, msg := problem(err)
	s.sendJSON(w, r, status, "application/problem+json", apiProblem{Status: status, Title: http.StatusText(status), Detail: msg})
}

func (s *server) sendJSON(w http.ResponseWriter, r *http.Request, status int, ctype string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		noteError(r, err)
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return
	}
	s.sendAs(w, r, status, ctype, "no-store", append(body, '\n'), "")
}

// isAPI tells a request of the JSON API.
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, apiPrefix) }

// preflightAPI answers the CORS preflight of an API read from another
// origin (a page's fetch with a header of its own, such as
// X-Request-Id). Reads need no credentials, so any origin and any header
// may: the answer is the same for all. Writes are for server-side callers
// and are not offered.
func preflightAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions || !isAPI(r) || r.Header.Get("Access-Control-Request-Method") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD")
		if hdrs := r.Header.Get("Access-Control-Request-Headers"); hdrs != "" {
			h.Set("Access-Control-Allow-Headers", hdrs)
		}
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Vary", "Access-Control-Request-Headers")
		w.WriteHeader(http.StatusNoContent)
	})
}

// apiCounter is GET /api/counters/{name}.
func (s *server) apiCounter(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := counterOf(r)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Counts(r.Context(), name)
	if err != nil {
		return nil, err
	}
	return c.JSON(), nil
}

// apiDays is GET /api/counters/{name}/days?from=YYYY-MM-DD&to=YYYY-MM-DD:
// one row per day, zeros included; the last 30 days by default.
func (s *server) apiDays(w http.ResponseWriter, r *http.Request) (any, error) {
	name, err := counterOf(r)
	if err != nil {
		return nil, err
	}
	to, from := s.store.Today(), time.Time{}
	q := r.URL.Query()
	if v := q.Get("to"); v != "" {
		if to, err = parseDay("to", v); err != nil {
			return nil, err
		}
	}
	from = to.AddDate(0, 0, -(chartDays - 1))
	if v := q.Get("from"); v != "" {
		if from, err = parseDay("from", v); err != nil {
			return nil, err
		}
	}
	switch n := int(to.Sub(from).Hours()/24) + 1; {
	case n < 1:
		return nil, errorf(http.StatusBadRequest, "from must not be after to.")
	case n > maxAPIDays:
		return nil, errorf(http.StatusBadRequest, "Ask for at most "+strconv.Itoa(maxAPIDays)+" days at a time.")
	}
	days, err := s.store.Days(r.Context(), name, from, to)
	if err != nil {
		return nil, err
	}
	out := apiDays{Name: name, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Days: []db.DayJSON{}}
	for _, d := range db.FillDays(days, from, to) {
		out.Days = append(out.Days, d.JSON())
	}
	return out, nil
}

func parseDay(param, v string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, param+" must be a date, YYYY-MM-DD.")
	}
	return d, nil
}

// apiHit is POST /api/counters/{name}/hit, with "Authorization: Bearer
// <API_TOKEN>": a server-side caller counts one view.
func (s *server) apiHit(w http.ResponseWriter, r *http.Request) (any, error) {
	if s.cfg.APIToken == "" {
		return nil, errorf(http.StatusForbidden, "Counting through the API is switched off on this server (no API token is set).")
	}
	const prefix = "Bearer "
	auth := r.Header.Get("Authorization")
	if len(auth) < len(prefix) || subtle.ConstantTimeCompare([]byte(auth[len(prefix):]), []byte(s.cfg.APIToken)) != 1 || auth[:len(prefix)] != prefix {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hitcounter"`)
		return nil, errorf(http.StatusUnauthorized, "A valid API token is needed: Authorization: Bearer <token>.")
	}
	name, err := counterOf(r)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Record(r.Context(), name, db.Hit{Kind: db.View})
	if err != nil {
		return nil, err
	}
	return c.JSON(), nil
}
