package web

import (
	"net/netip"
	"sync"
	"time"
)

// burstCap lets one client IP count at most limit views per counter per
// window (fixed windows: what it remembers is dropped when a window ends).
// Per instance: with several instances, each applies the cap to the
// requests it serves.
//
// Memory is bounded by maxBurstKeys (counter, IP) keys, and the cap holds
// past the bound, however many addresses or counter names a flood brings:
// a new key makes room by forgetting the oldest key still under the limit
// (which can then count at most limit-1 more views than it should, and
// only after maxBurstKeys newer keys); a key at its limit is never
// forgotten within its window. When every key remembered is at its limit,
// a new key counts as filtered until the window ends (failing closed: its
// views are still answered and recorded, as filtered).
type burstCap struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	start time.Time
	seen  map[burstKey]int // views seen in the window, by key
	// under is the keys that were under the limit when they came, oldest
	// first from head: the ones to forget to make room. A key that has
	// reached its limit since is skipped (and dropped from under) when its
	// turn comes; each key enters under once, so making room costs O(1)
	// amortized, and under holds at most the keys in seen.
	under []burstKey
	head  int
}

type burstKey struct {
	counter string
	ip      netip.Addr
}

// maxBurstKeys bounds the keys remembered within a window.
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
		b.start, b.seen, b.under, b.head = now, map[burstKey]int{}, nil, 0
	}
	k := burstKey{counter, ip}
	n, ok := b.seen[k]
	if !ok && len(b.seen) >= maxBurstKeys && !b.forgetOneUnder() {
		return false // every key is at its limit: fail closed
	}
	n++
	b.seen[k] = n
	if !ok && n < b.limit {
		b.under = append(b.under, k)
	}
	return n <= b.limit
}

// forgetOneUnder forgets the oldest key still under the limit, and says
// whether there was one.
func (b *burstCap) forgetOneUnder() bool {
	defer b.compactUnder()
	for b.head < len(b.under) {
		k := b.under[b.head]
		b.under[b.head] = burstKey{} // let its counter name go
		b.head++
		if b.seen[k] < b.limit {
			delete(b.seen, k)
			return true
		}
	}
	return false
}

// compactUnder drops the consumed front of under once it is half of it.
func (b *burstCap) compactUnder() {
	if b.head > len(b.under)/2 {
		n := copy(b.under, b.under[b.head:])
		clear(b.under[n:])
		b.under, b.head = b.under[:n], 0
	}
}
