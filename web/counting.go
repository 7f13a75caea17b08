package web

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/hitcounter/hitcounter/db"
)

// How a request counts: not at all (the owner's networks, or a browser
// whose owner asked not to be counted), as a bot, as a filtered view (over
// the burst cap), or as a view of a visitor.

// dontCountCookie is set only by an explicit click on "don't count my views
// on this browser" (POST /dont-count), never otherwise.
const dontCountCookie = "hitcounter_dont_count"

// hitFor decides how r counts for counter; counted is false when it does
// not count at all.
func (s *server) hitFor(r *http.Request, counter string) (h db.Hit, counted bool) {
	ip, _ := netip.ParseAddr(clientIP(r))
	ip = ip.Unmap()
	for _, p := range s.cfg.NotCounted {
		if p.Contains(ip) {
			return db.Hit{}, false
		}
	}
	if dontCount(r) {
		return db.Hit{}, false
	}
	// A crawler is told by its User-Agent when it views a page, an embed
	// or a badge. A press of +1 (a POST) is a person's act whatever the
	// client: crawlers don't send forms, and scripts clicking are what
	// the proxy's rate limit and the burst cap are for.
	ua := r.UserAgent()
	if r.Method != http.MethodPost && s.bots.isBot(ua) {
		return db.Hit{Kind: db.Bot}, true
	}
	if !s.burst.allow(counter, ip) {
		return db.Hit{Kind: db.Filtered}, true
	}
	// Hashed with the day's salt by the store, never stored as is.
	return db.Hit{Kind: db.View, Visitor: ip.String() + "\x00" + ua,
		MayCreate: func() bool { return s.creations.allow("", ip) }}, true
}

// With AUTO_CREATE on, one client IP creates at most maxCreations
// counters per creationWindow: enough for a blogger's new pages, too few
// for one client to fill MAX_COUNTERS in an afternoon, so the owner's new
// names keep being made. The owner's CLI is not limited. Per instance,
// like the burst cap.
const (
	maxCreations   = 10
	creationWindow = time.Hour
)

// view counts r as a view of counter when it counts, and returns the
// counter either way.
func (s *server) view(r *http.Request, counter string) (db.Counts, error) {
	if h, counted := s.hitFor(r, counter); counted {
		return s.store.Record(r.Context(), counter, h)
	}
	return s.store.Counts(r.Context(), counter)
}

func dontCount(r *http.Request) bool {
	c, err := r.Cookie(dontCountCookie)
	return err == nil && c.Value == "1"
}
