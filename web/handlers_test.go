package web

import (
	"fmt"
	"testing"
)

// The poll answers kept stay within pollSlots however many counters are
// polled (the table is an array: that bound is its type), most slots are
// used, the one just kept is found, and a counter whose answer was
// evicted finds none, not another's.
func TestPollCacheIsBounded(t *testing.T) {
	t.Parallel()
	const polled = 100_000
	c := newPollCache()
	for i := range polled {
		p := &renderedPoll{key: fmt.Sprintf("c%d", i), body: make([]byte, 1000)}
		c.put(p)
		if c.get(p.key) != p {
			t.Fatalf("%s: not found right after it was kept", p.key)
		}
	}
	kept := 0
	for i := range c.slots {
		if c.slots[i].Load() != nil {
			kept++
		}
	}
	if kept < pollSlots/2 {
		t.Errorf("%d of %d slots used after %d counters, want most", kept, pollSlots, polled)
	}
	found := 0
	for i := range polled {
		key := fmt.Sprintf("c%d", i)
		if p := c.get(key); p != nil {
			if p.key != key {
				t.Fatalf("%s: got the answer of %s", key, p.key)
			}
			found++
		}
	}
	if found != kept {
		t.Errorf("%d counters found their answer, want the %d kept", found, kept)
	}
	if c.get("never-polled") != nil {
		t.Error("an answer for a counter never polled")
	}
}
