package db

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// During an outage every request fails the same way: one log line per
// retry and per failure, for every request, would bury everything else
// (thousands of lines a minute). So the first failure of an outage is
// logged in full; from then on retries and failures are logged at debug
// and counted, an error line sums them up every summaryEvery, and a line
// says when the database answers again. Every fact is still at debug.

// summaryEvery is how often an ongoing outage is summed up in the log.
const summaryEvery = 10 * time.Second

type outage struct {
	mu          sync.Mutex
	since       time.Time // zero: no outage
	lastSummary time.Time
	failures    int // since the last summary
	total       int // since the outage began
}

// outageFailed records a final failure for want of the database, and says at
// which level to log it.
func (s *Store) outageFailed(ctx context.Context, op string) slog.Level {
	o := &s.outage
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	o.total++
	if o.since.IsZero() {
		o.since, o.lastSummary, o.failures = now, now, 0
		s.log.LogAttrs(ctx, slog.LevelError, "db unavailable: requests fail until it answers; their retries and failures are logged at debug, summed up here every "+summaryEvery.String(),
			slog.String("op", op))
		return slog.LevelError
	}
	o.failures++
	if now.Sub(o.lastSummary) >= summaryEvery {
		s.log.LogAttrs(ctx, slog.LevelError, "db still unavailable",
			slog.Duration("for", now.Sub(o.since).Round(time.Second)),
			slog.Int("failed", o.failures),
			slog.Duration("in", now.Sub(o.lastSummary).Round(time.Second)))
		o.lastSummary, o.failures = now, 0
	}
	return slog.LevelDebug
}

// outageOver ends an outage on the first success.
func (s *Store) outageOver(ctx context.Context) {
	if !s.outageFlag.Load() {
		return
	}
	o := &s.outage
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "db available again",
		slog.Duration("after", time.Since(o.since).Round(time.Millisecond)),
		slog.Int("failed", o.total))
	o.since, o.total, o.failures = time.Time{}, 0, 0
	s.outageFlag.Store(false)
}
