package web

import (
	"net/netip"
	"sync"
	"time"
)

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
