package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
//
// A name it lacks is then no counter, unless one was made elsewhere a
// moment ago and its notification is still on its way (the owner's CLI
// creates a counter, then its badge is asked for). So before answering
// "not found", a reader waits for a sync: a round trip on the listener's
// connection, begun after it asked. PostgreSQL signals a listener at each
// commit and sends it the notifications before its next answer, so once
// the round trip is over and they are applied, memory has every counter
// committed before the question. One round trip answers all the readers
// waiting; none takes a pooled connection or a transaction, or logs.
type cache struct {
	live atomic.Bool

	mu  sync.RWMutex
	m   map[string]entry
	gen uint32 // the latest full load (load)

	syncMu sync.Mutex
	next   *syncRound         // the readers the next round trip answers; nil: none
	wake   context.CancelFunc // ends the listener's wait for notifications
}

// syncRound is the readers waiting for one round trip.
type syncRound struct {
	done chan struct{}
	ok   bool // set before done is closed: the cache was brought up to date
}

// end answers the round's readers; a nil round has none.
func (r *syncRound) end(ok bool) {
	if r != nil {
		r.ok = ok
		close(r.done)
	}
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
	gen                             uint32 // the load it was last seen in, or after
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

// full reports whether memory, live, holds at least max counters: no
// auto-creation can succeed, without asking the database.
func (c *cache) full(max int) bool {
	if !c.live.Load() {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m) >= max
}

// synced looks up a name get did not find, once memory has every change
// committed before the call (sync). ok false: only the database can tell,
// since the listener is down or ctx ended first.
func (c *cache) synced(ctx context.Context, name string) (e entry, found, ok bool) {
	if !c.sync(ctx) {
		return entry{}, false, false
	}
	// Not get: memory was complete at the sync even if the listener has
	// gone down since.
	c.mu.RLock()
	e, found = c.m[name]
	c.mu.RUnlock()
	return e, found, true
}

// sync waits until the listener has applied every change committed before
// it was called, and reports whether it has: false if the listener is not
// live or goes down meanwhile, or ctx ends first.
func (c *cache) sync(ctx context.Context) bool {
	c.syncMu.Lock()
	if !c.live.Load() {
		c.syncMu.Unlock()
		return false
	}
	r := c.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		c.next = r
		if c.wake != nil {
			c.wake()
		}
	}
	c.syncMu.Unlock()
	select {
	case <-r.done:
		return r.ok
	case <-ctx.Done():
		return false
	}
}

// sleeping tells the cache how to wake the listener for a sync, and says
// whether it may wait for notifications: not when readers already wait.
func (c *cache) sleeping(wake context.CancelFunc) bool {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	c.wake = wake
	return c.next == nil
}

// round takes the readers that the round trip about to begin answers.
func (c *cache) round() *syncRound {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	r := c.next
	c.next = nil
	return r
}

// down marks memory stale, and sends the readers waiting for a sync to
// the database.
func (c *cache) down() {
	c.syncMu.Lock()
	c.live.Store(false)
	r := c.next
	c.next = nil
	c.syncMu.Unlock()
	r.end(false)
}

func (c *cache) apply(name string, e entry) {
	c.mu.Lock()
	if cur, ok := c.m[name]; !ok || e.version > cur.version {
		e.gen = c.gen
		c.m[name] = e
	}
	c.mu.Unlock()
}

func (c *cache) remove(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// A full read of the table (at every connect of the listener) is loaded
// in place: a second map of every counter would double the memory at each
// reconnect, and the garbage collector gives it back slowly. begin starts
// a load, loaded takes each row, end drops the counters it did not see.
func (c *cache) begin() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	return c.gen
}

// loaded takes a row of load gen, keeping a newer value that a write of
// this instance put in meanwhile.
func (c *cache) loaded(gen uint32, name string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[name]; ok && cur.version > e.version {
		e = cur
	}
	e.gen = gen
	c.m[name] = e
}

// end drops the counters load gen did not see: deleted while the
// listener was down.
func (c *cache) end(gen uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, e := range c.m {
		if e.gen != gen {
			delete(c.m, name)
		}
	}
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
		s.cache.down()
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 {
			downSince = time.Now()
		}
		wait := max(s.cfg.Retry.delay(min(failures, 32), rand.Float64()), minListenWait)
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
// applies notifications and answers syncs until the connection fails or
// ctx ends.
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
	if _, err := conn.Exec(setup, "listen "+notifyChannel+"; listen "+saltsChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.salts.listening(conn.PgConn().PID())
	defer s.salts.listening(0)
	rows, err := conn.Query(setup, selectCounters)
	if err != nil {
		return fmt.Errorf("load counts: %w", err)
	}
	gen := s.cache.begin()
	for rows.Next() {
		var name string
		var e entry
		if err := scanEntry(rows, &name, &e); err != nil {
			rows.Close()
			return fmt.Errorf("load counts: %w", err)
		}
		s.cache.loaded(gen, name, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load counts: %w", err)
	}
	s.cache.end(gen)
	s.cache.live.Store(true)
	up()

	for {
		n, err := s.waitForNotification(ctx, conn)
		if err != nil {
			return err
		}
		if n != nil {
			if err := s.notified(ctx, n); err != nil {
				return err
			}
			continue
		}
		// Quiet for a heartbeat, or readers wait for a sync: a round trip
		// checks that the connection is still there, and brings the
		// notifications committed before it began.
		r := s.cache.round()
		check, cancel := context.WithTimeout(ctx, listenTimeout)
		err = conn.Ping(check)
		cancel()
		if err != nil {
			r.end(false)
			return fmt.Errorf("check connection: %w", err)
		}
		// pgx keeps those that came with the answer; take them now.
		for {
			n, _ := conn.WaitForNotification(doneCtx)
			if n == nil {
				break
			}
			if err := s.notified(ctx, n); err != nil {
				r.end(false)
				return err
			}
		}
		r.end(true)
	}
}

// doneCtx has ended: pgx's WaitForNotification with it returns only a
// notification already received, without reading the connection.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// waitForNotification waits up to a heartbeat for a notification, or until
// a reader asks for a sync. No notification and no error: the listener
// should make a round trip.
func (s *Store) waitForNotification(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wait, cancel := context.WithTimeout(ctx, heartbeat)
	defer cancel()
	if !s.cache.sleeping(cancel) {
		return nil, nil
	}
	n, err := conn.WaitForNotification(wait)
	switch {
	case n != nil:
		return n, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wait.Err() == nil:
		return nil, fmt.Errorf("wait for notifications: %w", err)
	}
	return nil, nil
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

// notified applies a notification of a counter, or hands one about the
// visitor salt to visitors.go. One of a counter it cannot read fails the listener:
// memory would lack a change, and a name it lacks would be wrongly not
// found; reconnecting reloads every count.
func (s *Store) notified(ctx context.Context, msg *pgconn.Notification) error {
	if msg.Channel == saltsChannel {
		s.saltNotified(ctx, msg.Payload)
		return nil
	}
	payload := msg.Payload
	var n notification
	err := json.Unmarshal([]byte(payload), &n)
	if err == nil && n.Name == "" {
		err = errors.New("no counter name")
	}
	if err != nil {
		return fmt.Errorf("notification %q: %w", payload, err)
	}
	if n.Deleted {
		s.cache.remove(n.Name)
		return nil
	}
	e := entry{hits: n.Hits, version: n.Version, updated: n.Updated,
		views: n.Views, visitors: n.Visitors, bots: n.Bots, filtered: n.Filtered,
		switches: Switches{NoPlusOne: n.NoPlusOne, NoPage: n.NoPage}}
	if n.Day != nil {
		if e.day, err = time.Parse(time.DateOnly, *n.Day); err != nil {
			return fmt.Errorf("notification %q: %w", payload, err)
		}
	}
	s.cache.apply(n.Name, e)
	return nil
}
