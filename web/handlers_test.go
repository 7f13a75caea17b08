package web

import (
	"fmt"
	"testing"
)

// The poll answers kept stay within pollSlots however many counters are
// polled, and the one just kept is found.
func TestPollCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newPollCache()
	for i := range 100_000 {
		p := &renderedPoll{key: fmt.Sprintf("c%d", i), body: make([]byte, 1000)}
		c.put(p)
		if c.get(p.key) != p {
			t.Fatalf("%s: not found right after it was kept", p.key)
		}
	}
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			n++
		}
	}
	if n > pollSlots || n < pollSlots/2 {
		t.Errorf("%d answers kept after 100 000 counters, want at most %d (and most slots used)", n, pollSlots)
	}
	if c.get("never-polled") != nil {
		t.Error("an answer for a counter never polled")
	}
}
