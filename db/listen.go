package db

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the channel the triggers of
// migrations/002_notify_counters.sql announce every change on.
const notifyChannel = "counters"

const (
	// listenerName is the listener connection's application_name, so an
	// operator can tell it apart in pg_stat_activity.
	listenerName = "hitcounter listener"
	// heartbeat is how long an idle listener waits before it checks its
	// connection. A connection that died silently (a frozen server, a lost
	// network) is noticed within heartbeat+listenTimeout, and reads go back
	// to the database.
	heartbeat = time.Second
	// listenTimeout bounds connecting, subscribing, loading and each check.
	listenTimeout = 5 * time.Second
	// minListenWait keeps reconnects from spinning when the retry policy has
	// no delay (retries switched off).
	minListenWait = 50 * time.Millisecond
)

// cache holds the latest committed count of every counter, as long as live
// says the listener has them all and hears every change.
type cache struct {
	live atomic.Bool

	mu sync.RWMutex
	m  map[string]entry
}

// entry is a counter at a version, with its latest day row; versions grow
// by one with every update (the trigger counters_bump_version), so an older
// value never replaces a newer one, whichever arrives last.
type entry struct {
	hits, version                   int64
	updated                         time.Time
	day                             time.Time // zero: no day row yet
	views, visitors, bots, filtered int64
	switches                        Switches
}

func (e entry) counts(name string) Counts {
	return Counts{Name: name, Total: e.hits, Day: e.day, Views: e.views, Visitors: e.visitors,
		Bots: e.bots, Filtered: e.filtered, Updated: e.updated, Switches: e.switches}
}

func newCache() *cache { return &cache{m: map[string]entry{}} }

// get answers from memory only while the listener is live.
func (c *cache) get(name string) (entry, bool) {
	if !c.live.Load() {
		return entry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[name]
	c.mu.RUnlock()
	return e, ok
}

func (c *cache) apply(name string, e entry) {
	c.mu.Lock()
	if cur, ok := c.m[name]; !ok || e.version > cur.version {
		c.m[name] = e
	}
	c.mu.Unlock()
}

func (c *cache) remove(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// load replaces the cache with a full read of the table, keeping a newer
// value that a write of this instance put in meanwhile.
func (c *cache) load(all map[string]entry) {
	c.mu.Lock()
	for name, e := range all {
		if cur, ok := c.m[name]; ok && cur.version > e.version {
			all[name] = cur
		}
	}
	c.m = all
	c.mu.Unlock()
}

// listen keeps a dedicated connection LISTENing until ctx ends. While it is
// down, reads go to the database; it reconnects with the retry policy's
// backoff, and each time reloads every count, since it may have missed
// notifications meanwhile.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	failures := 0
	var downSince time.Time
	for {
		err := s.listenOnce(ctx, cfg, func() {
			attrs := []slog.Attr{slog.Int("attempts", failures+1)}
			if failures > 0 {
				attrs = append(attrs, slog.Duration("down_for", time.Since(downSince).Round(time.Millisecond)))
			}
			s.log.LogAttrs(ctx, slog.LevelInfo, "db listener up: reads are served from memory", attrs...)
			failures = 0
		})
		s.cache.live.Store(false)
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 {
			downSince = time.Now()
		}
		wait := max(s.cfg.Retry.Delay(min(failures, 32), rand.Float64()), minListenWait)
		level := slog.LevelWarn
		switch code := sqlState(err); {
		case code == "42P01" || code == "42703":
			level = slog.LevelInfo // not migrated yet: expected while -migrate runs at start
		case failures > 1:
			level = slog.LevelDebug // the first says it; "up" says for how long
		}
		s.log.LogAttrs(ctx, level, "db listener down: reads go to the database",
			slog.Int("attempt", failures),
			slog.Duration("wait", wait),
			slog.Any("err", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// listenOnce connects, subscribes, loads every count, calls up, and then
// applies notifications until the connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, up func()) error {
	cfg = cfg.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	setup, cancel := context.WithTimeout(ctx, listenTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(setup, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closing, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenTimeout)
		defer cancel()
		_ = conn.Close(closing) // the connection is done with either way
	}()
	// Subscribe first, then load: a change committed in between is in the
	// load or in a notification (or both; versions sort that out).
	if _, err := conn.Exec(setup, "listen "+notifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	rows, err := conn.Query(setup, selectCounters)
	if err != nil {
		return fmt.Errorf("load counts: %w", err)
	}
	all := map[string]entry{}
	for rows.Next() {
		var name string
		var e entry
		if err := scanEntry(rows, &name, &e); err != nil {
			rows.Close()
			return fmt.Errorf("load counts: %w", err)
		}
		all[name] = e
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load counts: %w", err)
	}
	s.cache.load(all)
	s.cache.live.Store(true)
	up()

	for {
		wait, cancel := context.WithTimeout(ctx, heartbeat)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			s.notified(ctx, n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case wait.Err() == nil:
			return fmt.Errorf("wait for notifications: %w", err)
		}
		// Quiet for a heartbeat: make sure the connection is still there.
		check, cancel := context.WithTimeout(ctx, listenTimeout)
		err = conn.Ping(check)
		cancel()
		if err != nil {
			return fmt.Errorf("check connection: %w", err)
		}
	}
}

// notification is the payload of the counters_notify trigger.
type notification struct {
	Name     string    `json:"name"`
	Hits     int64     `json:"hits"`
	Version  int64     `json:"version"`
	Updated  time.Time `json:"updated"`
	Deleted  bool      `json:"deleted"`
	Day      *string   `json:"day"` // a date, null before the first day row
	Views    int64     `json:"views"`
	Visitors int64     `json:"visitors"`
	Bots     int64     `json:"bots"`
	Filtered int64     `json:"filtered"`
	// Absent (false) in an announcement of a server not yet migrated.
	NoPlusOne bool `json:"no_plus_one"`
	NoPage    bool `json:"no_page"`
}

func (s *Store) notified(ctx context.Context, payload string) {
	var n notification
	err := json.Unmarshal([]byte(payload), &n)
	if err != nil || n.Name == "" {
		s.log.LogAttrs(ctx, slog.LevelWarn, "db listener: notification ignored",
			slog.String("payload", payload), slog.Any("err", err))
		return
	}
	if n.Deleted {
		s.cache.remove(n.Name)
		return
	}
	e := entry{hits: n.Hits, version: n.Version, updated: n.Updated,
		views: n.Views, visitors: n.Visitors, bots: n.Bots, filtered: n.Filtered,
		switches: Switches{NoPlusOne: n.NoPlusOne, NoPage: n.NoPage}}
	if n.Day != nil {
		if e.day, err = time.Parse(time.DateOnly, *n.Day); err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "db listener: notification ignored",
				slog.String("payload", payload), slog.Any("err", err))
			return
		}
	}
	s.cache.apply(n.Name, e)
}
