package web

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	useragent "github.com/medama-io/go-useragent"

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
	return db.Hit{Kind: db.View, Visitor: ip.String() + "\x00" + ua}, true
}

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

// botDetector tells crawlers by their User-Agent, with the maintained list
// of github.com/medama-io/go-useragent.
type botDetector struct{ p *useragent.Parser }

func newBotDetector() *botDetector { return &botDetector{p: useragent.NewParser()} }

func (b *botDetector) isBot(ua string) bool { return b.p.Parse(ua).IsBot() }

// burstCap lets one client IP count at most limit views per counter per
// window (fixed windows: the map is dropped when a window ends, so memory
// is bounded by one window's clients). Per instance: with several
// instances, each applies the cap to the requests it serves.
type burstCap struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	start time.Time
	seen  map[burstKey]int
}

type burstKey struct {
	counter string
	ip      netip.Addr
}

// maxBurstKeys bounds the map within a window; clients beyond it are not
// capped until the next window (failing open: a flood of distinct
// addresses is a different attack, for the proxy's limits).
const maxBurstKeys = 100_000

func newBurstCap(limit int, window time.Duration) *burstCap {
	return &burstCap{limit: limit, window: window, now: time.Now, seen: map[burstKey]int{}}
}

func (b *burstCap) allow(counter string, ip netip.Addr) bool {
	if b.limit <= 0 {
		return true
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.start) >= b.window {
		b.start, b.seen = now, map[burstKey]int{}
	}
	k := burstKey{counter, ip}
	n, ok := b.seen[k]
	if !ok && len(b.seen) >= maxBurstKeys {
		return true
	}
	b.seen[k] = n + 1
	return n < b.limit
}
