package web

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// burstClock is a clock the test moves by hand.
type burstClock struct{ t time.Time }

func (c *burstClock) now() time.Time { return c.t }

func newTestBurstCap(limit int) (*burstCap, *burstClock) {
	clock := &burstClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b := newBurstCap(limit, time.Minute)
	b.now = clock.now
	return b, clock
}

// burstIP is the i-th of many distinct client addresses (IPv6, as a flood
// of distinct addresses would be).
func burstIP(i int) netip.Addr {
	a := netip.MustParseAddr("2001:db8::").As16()
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(a)
}

// views makes n views of counter from ip and returns how many were allowed.
func (b *burstCap) views(counter string, ip netip.Addr, n int) (allowed int) {
	for range n {
		if b.allow(counter, ip) {
			allowed++
		}
	}
	return allowed
}

func wantBurstBounded(t *testing.T, b *burstCap) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) > maxBurstKeys {
		t.Fatalf("%d keys remembered, over the bound of %d", len(b.seen), maxBurstKeys)
	}
}

// Past maxBurstKeys distinct (counter, IP) keys in one window, the cap
// still holds, for the clients seen before the flood and for those after
// it, and memory stays within the bound.
func TestBurstCapLimitsPastItsBound(t *testing.T) {
	const limit = 3
	b, clock := newTestBurstCap(limit)
	early := netip.MustParseAddr("192.0.2.1")
	if got := b.views("blog", early, limit+2); got != limit {
		t.Fatalf("a client before the flood: %d of %d views allowed, want %d", got, limit+2, limit)
	}
	// The flood: twice the bound in distinct addresses, one view each (a
	// view of another counter is another key, the same in the map).
	for i := range 2 * maxBurstKeys {
		if !b.allow("c"+strconv.Itoa(i%7), burstIP(i)) {
			t.Fatalf("flood client %d refused its first view", i)
		}
	}
	wantBurstBounded(t, b)
	if got := b.views("blog", early, 5); got != 0 {
		t.Errorf("the client over its limit before the flood: %d more views allowed after it, want 0", got)
	}
	late := netip.MustParseAddr("198.51.100.7")
	if got := b.views("blog", late, limit+5); got != limit {
		t.Errorf("a client after the flood: %d of %d views allowed, want %d", got, limit+5, limit)
	}
	for i := range limit + 2 {
		if b.allow("blog", late) {
			t.Fatalf("a client over its limit after the flood: view %d more allowed", i+1)
		}
	}
	wantBurstBounded(t, b)

	// A new window forgets everything.
	clock.t = clock.t.Add(time.Minute)
	if got := b.views("blog", early, limit+1); got != limit {
		t.Errorf("next window: %d of %d views allowed, want %d", got, limit+1, limit)
	}
	b.mu.Lock()
	n := len(b.seen)
	b.mu.Unlock()
	if n != 1 {
		t.Errorf("next window remembers %d keys, want 1", n)
	}

	// The configuration's documentation says the same bound, written
	// with a space between thousands.
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("at most %d %03d (counter, IP) pairs a minute", maxBurstKeys/1000, maxBurstKeys%1000); !strings.Contains(string(doc), want) {
		t.Errorf("docs/configuration.md does not say %q", want)
	}
}

// When every remembered client is at its limit, a new one counts as
// filtered (failing closed) rather than letting a capped one go: the cap
// never stops holding, and memory stays within the bound.
func TestBurstCapFailsClosedWhenFullOfCappedClients(t *testing.T) {
	const limit = 1
	b, clock := newTestBurstCap(limit)
	for i := range maxBurstKeys {
		if got := b.views("blog", burstIP(i), limit+1); got != limit {
			t.Fatalf("client %d: %d views allowed, want %d", i, got, limit)
		}
	}
	wantBurstBounded(t, b)
	for i := maxBurstKeys; i < maxBurstKeys+1000; i++ {
		if b.allow("blog", burstIP(i)) {
			t.Fatalf("new client %d allowed while every remembered one is at its limit", i)
		}
	}
	for i := range maxBurstKeys {
		if b.allow("blog", burstIP(i)) {
			t.Fatalf("capped client %d allowed again in its window", i)
		}
	}
	wantBurstBounded(t, b)
	clock.t = clock.t.Add(time.Minute)
	if !b.allow("blog", burstIP(maxBurstKeys)) {
		t.Error("a new client refused in the next window")
	}
}

// Under the bound, the cap is per counter and client, per window.
func TestBurstCapPerCounterAndClient(t *testing.T) {
	b, clock := newTestBurstCap(2)
	one, two := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for _, tt := range []struct {
		counter string
		ip      netip.Addr
		want    int
	}{
		{"blog", one, 2}, {"blog", one, 0}, {"blog", two, 2}, {"docs", one, 2},
	} {
		if got := b.views(tt.counter, tt.ip, 3); got != tt.want {
			t.Errorf("%s from %s: %d of 3 allowed, want %d", tt.counter, tt.ip, got, tt.want)
		}
	}
	clock.t = clock.t.Add(59 * time.Second)
	if b.allow("blog", one) {
		t.Error("allowed again within the window")
	}
	clock.t = clock.t.Add(time.Second)
	if !b.allow("blog", one) {
		t.Error("refused in the next window")
	}
	if b := newBurstCap(0, time.Minute); b.views("blog", one, 1000) != 1000 {
		t.Error("limit 0 is no limit")
	}
}
