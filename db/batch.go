package db

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// batcher combines concurrent increments of one counter (group commit).
// While a write of a counter is in flight, new increments queue; when it
// ends, the next write adds all of them in one statement and hands each its
// own value, in arrival order. A lone increment finds no write in flight and
// goes out at once: there is no timer and no added wait.
//
// Nothing is counted in memory: every caller is answered after its batch's
// statement has committed, or with the batch's error.
type batcher struct {
	write     func(ctx context.Context, name string, hits []Hit) ([]Counts, error)
	maxBatch  int
	maxQueued int

	mu     sync.Mutex
	queues map[string]*queue // only counters with a write in flight
}

type queue struct {
	waiting []*waiter // FIFO; a waiter that gave up stays, marked, until taken
}

type waiter struct {
	hit      Hit
	deadline time.Time // zero: none
	done     chan result
	gaveUp   bool // under batcher.mu: left before its batch was taken
}

type result struct {
	counts Counts
	err    error
}

func newBatcher(write func(context.Context, string, []Hit) ([]Counts, error), maxBatch, maxQueued int) *batcher {
	return &batcher{write: write, maxBatch: maxBatch, maxQueued: maxQueued, queues: map[string]*queue{}}
}

// record queues one hit of name and waits for its counts.
//
// If ctx ends while the hit still waits for its batch, the hit is withdrawn
// (nothing was counted) and the caller gets ErrUnavailable. Once its batch
// is in flight the caller waits for the batch's outcome, whatever ctx does,
// so the answer is always the truth; the batch itself ends by the latest
// deadline of its members.
func (b *batcher) record(ctx context.Context, name string, h Hit) (Counts, error) {
	w := &waiter{hit: h, done: make(chan result, 1)}
	w.deadline, _ = ctx.Deadline()

	b.mu.Lock()
	q, busy := b.queues[name]
	if !busy {
		q = &queue{}
		b.queues[name] = q
	}
	if len(q.waiting) >= b.maxQueued {
		b.mu.Unlock()
		return Counts{}, fmt.Errorf("increment %q: %w: %d increments already waiting", name, ErrUnavailable, b.maxQueued)
	}
	q.waiting = append(q.waiting, w)
	b.mu.Unlock()
	if !busy {
		go b.flush(name, q)
	}

	select {
	case r := <-w.done:
		return r.counts, r.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	for _, o := range q.waiting {
		if o == w {
			w.gaveUp = true
			b.mu.Unlock()
			return Counts{}, fmt.Errorf("increment %q: %w: %w", name, ErrUnavailable, context.Cause(ctx))
		}
	}
	b.mu.Unlock()
	r := <-w.done // taken into a batch: its outcome is the answer
	return r.counts, r.err
}

// flush writes name's batches one after another until its queue is empty.
func (b *batcher) flush(name string, q *queue) {
	for {
		batch := b.take(name, q)
		if len(batch) == 0 {
			return
		}
		hits := make([]Hit, len(batch))
		for i, w := range batch {
			hits[i] = w.hit
		}
		ctx, cancel := batchContext(batch)
		counts, err := b.write(ctx, name, hits)
		cancel()
		for i, w := range batch {
			if err != nil {
				w.done <- result{err: err}
			} else {
				w.done <- result{counts: counts[i]}
			}
		}
	}
}

// take removes up to maxBatch waiters from the front of q. With none left
// it forgets q, so the next increment of name starts a new flush.
func (b *batcher) take(name string, q *queue) []*waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*waiter
	i := 0
	for ; i < len(q.waiting) && len(batch) < b.maxBatch; i++ {
		if w := q.waiting[i]; !w.gaveUp {
			batch = append(batch, w)
		}
	}
	clear(q.waiting[:i]) // let the taken waiters be collected
	q.waiting = q.waiting[i:]
	if len(batch) == 0 {
		delete(b.queues, name)
	}
	return batch
}

// batchContext bounds a batch's write by the latest deadline of its
// members: the write must not be cut while one of them can still use its
// answer. A member without a deadline leaves the write without one.
func batchContext(batch []*waiter) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, w := range batch {
		if w.deadline.IsZero() {
			return context.WithCancel(context.Background())
		}
		if w.deadline.After(latest) {
			latest = w.deadline
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
