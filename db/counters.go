package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kind is what a counted request was.
type Kind uint8

const (
	// View is a person's view or click: it adds to the total and today's
	// views, and to today's visitors if its visitor is new today.
	View Kind = iota
	// Bot is a crawler's request: counted apart, never a view or visitor.
	Bot
	// Filtered is a view over its client's burst cap: answered, recorded in
	// the day row as filtered, not counted as a view.
	Filtered
)

// Hit is one counted request.
type Hit struct {
	Kind Kind
	// Visitor identifies who viewed, for today's distinct visitors (the
	// caller passes the client IP and User-Agent). It is only kept in memory
	// until its hit is written, as an HMAC under the day's random salt
	// (visitors.go). Empty: the view counts, but no visitor.
	Visitor string
	// MayCreate is asked, with auto-creation on, before this view creates
	// its unknown counter (the web asks a per-client limit); false: it does
	// not, and the counter is not found. nil: it may. A bot or a filtered
	// view never creates.
	MayCreate func() bool
}

// MainCounter is the counter migration 001 creates, whose page is the
// front page, /.
const MainCounter = "main"

// Counts is a counter as a reader sees it: the total of views, and today's
// day row.
type Counts struct {
	Name     string
	Total    int64     // views ever
	Day      time.Time // the day the figures below are for: today
	Views    int64     // today's views
	Visitors int64     // today's distinct visitors
	Bots     int64     // today's crawler requests
	Filtered int64     // today's views over a burst cap
	Updated  time.Time // the last change of the counter
	Switches
}

// Switches are the owner's choices for a counter. The zero value is a new
// counter's: +1 offered, page shown.
type Switches struct {
	NoPlusOne bool // its page and embeds offer no +1, and its hit route refuses
	NoPage    bool // /c/NAME shows no page; badges, embeds and the API still work
}

// Record counts one hit of the named counter and returns the counter as it
// was once the hit was committed. Each view gets its own distinct total and
// today's views (concurrent hits are combined into one statement by
// batch.go, which hands out the values it added in arrival order); today's
// visitors, bots and filtered are as of that statement's commit.
func (s *Store) Record(ctx context.Context, name string, h Hit) (Counts, error) {
	if s.batches == nil {
		tallies, err := s.add(ctx, name, []Hit{h})
		if err != nil {
			return Counts{}, err
		}
		return tallies[0], nil
	}
	return s.batches.record(ctx, name, h)
}

// incrementSQL is the one statement that counts hits: the total, the day
// row (upserted, adding to it), the day's new visitors, and the
// transaction's marker (resolve.go). The visitors' insert reads c, so it
// runs after the counter's row is locked, and concurrent writers of one
// counter take their locks in the same order. count(*) counts the rows
// this statement inserted, not the table.
//
// $1 name, $2 day, $3 views, $4 bots, $5 filtered, $6 the visitors'
// HMACs under the day's salt (distinct; bound here to the counter's id,
// see visitors.go), $7 the marker.
const incrementSQL = `with m as (
	insert into commit_markers (id) values ($7)
), c as (
	update counters set hits = hits + $3, updated_at = now() where name = $1
	returning id, hits, version, updated_at, not plus_one as no_plus_one, not page as no_page
), v as (
	insert into visitors (counter, day, hash)
	select $1, $2, substr(sha256(int8send(c.id) || h), 1, 16) from c, unnest($6::bytea[]) h
	on conflict do nothing
	returning 1
), d as (
	insert into counter_days as t (counter, day, views, visitors, bots, filtered)
	select $1, $2, $3, (select count(*) from v), $4, $5 from c
	on conflict (counter, day) do update set
		views = t.views + excluded.views,
		visitors = t.visitors + excluded.visitors,
		bots = t.bots + excluded.bots,
		filtered = t.filtered + excluded.filtered
	returning views, visitors, bots, filtered
)
select c.hits, c.version, c.updated_at, d.views, d.visitors, d.bots, d.filtered, c.no_plus_one, c.no_page from c, d`

// add writes hits in one transaction and returns, for each hit, the counts
// its caller sees: views get their own total and today's views, in order.
// Two round trips: BEGIN with the statement, then COMMIT, so a COMMIT lost
// in flight is known to follow a statement that inserted its marker, and
// is resolved by the retry loop. An unknown counter is created first when
// auto-creation is on.
func (s *Store) add(ctx context.Context, name string, hits []Hit) ([]Counts, error) {
	var views, bots, filtered int
	for _, h := range hits {
		switch h.Kind {
		case Bot:
			bots++
		case Filtered:
			filtered++
		default:
			views++
		}
	}
	// A name memory proves is no counter costs no transaction, unless a
	// view may create it. Checked per batch, not per hit: a counter memory
	// has costs one map read.
	creatable := s.cfg.AutoCreate && views > 0 && !s.cache.full(s.cfg.MaxCounters)
	if _, known := s.cache.get(name); !known && !creatable {
		if _, found, ok := s.cache.synced(ctx, name); ok && !found {
			return nil, s.notFound("increment", name)
		}
	}
	day := s.Today()
	visitors := make([][]byte, 0, len(hits))
	seen := make(map[string]bool, len(hits))
	salt, err := s.salt(ctx, day)
	if err != nil {
		return nil, err
	}
	for _, h := range hits {
		if h.Kind != View {
			continue
		}
		if h.Visitor != "" && !seen[h.Visitor] {
			seen[h.Visitor] = true
			visitors = append(visitors, visitorHash(salt, h.Visitor))
		}
	}

	var after entry
	args := []any{name, day, views, bots, filtered, visitors}
	attrs := []slog.Attr{slog.String("counter", name), slog.Int("n", len(hits))}
	write := func() error {
		return s.retry(ctx, "increment", attrs, func(ctx context.Context) outcome {
			after = entry{day: day}
			return s.writeOnce(ctx, name, args, &after)
		})
	}
	err = write()
	if errors.Is(err, ErrNotFound) && creatable && mayCreate(hits) {
		if err = s.autoCreate(ctx, name); err == nil {
			err = write()
		}
	}
	if err != nil {
		return nil, err
	}
	s.stats.writes.Add(1)
	s.stats.increments.Add(int64(len(hits)))
	s.observe().Batch(len(hits))
	s.cache.apply(name, after)

	// The statement added views: this batch owns the values up to them.
	out := make([]Counts, len(hits))
	i := int64(0)
	for k, h := range hits {
		c := after.counts(name)
		if h.Kind == View {
			c.Total -= int64(views) - 1 - i
			c.Views -= int64(views) - 1 - i
			i++
		}
		out[k] = c
	}
	return out, nil
}

// mayCreate asks the views of hits, in order, until one may create their
// counter: each asked is charged, so no more are asked than needed.
func mayCreate(hits []Hit) bool {
	for _, h := range hits {
		if h.Kind == View && (h.MayCreate == nil || h.MayCreate()) {
			return true
		}
	}
	return false
}

// scanIncrement reads incrementSQL's row.
func (e *entry) scanIncrement(row pgx.Row) error {
	return row.Scan(&e.hits, &e.version, &e.updated, &e.views, &e.visitors, &e.bots, &e.filtered,
		&e.switches.NoPlusOne, &e.switches.NoPage)
}

// writeOnce is one attempt of add's transaction. A pooled connection that
// died while idle (a server restart closes them all) fails the first
// round trip before anything was committed: the next one is taken at
// once, without spending a retry.
func (s *Store) writeOnce(ctx context.Context, name string, args []any, after *entry) outcome {
	m := newMarker(s.cfg.now())
	args = append(args[:len(args):len(args)], m) // $7; the caller's args stay as they are
	var err error
	for range s.pool.Config().MaxConns + 1 {
		var conn *pgxpool.Conn
		conn, err = s.pool.Acquire(ctx)
		if err != nil {
			return outcome{phase: phaseBegin, err: err}
		}
		b := &pgx.Batch{}
		b.Queue("begin")
		b.Queue(incrementSQL, args...).QueryRow(after.scanIncrement)
		err = conn.SendBatch(ctx, b).Close()
		if err != nil {
			closed := conn.Conn().IsClosed()
			if !closed {
				// Nothing to keep: roll back, so the connection can be reused.
				_, _ = conn.Exec(context.WithoutCancel(ctx), "rollback")
			}
			conn.Release()
			var pgErr *pgconn.PgError
			if closed && !errors.As(err, &pgErr) && ctx.Err() == nil {
				continue // a dead connection, nothing sent reached a live server
			}
			if errors.Is(err, pgx.ErrNoRows) {
				err = fmt.Errorf("counter %q: %w", name, ErrNotFound)
			}
			return outcome{phase: phaseBody, connClosed: closed, err: err}
		}
		_, err = conn.Exec(ctx, "commit")
		closed := conn.Conn().IsClosed()
		conn.Release()
		if err != nil {
			return outcome{phase: phaseCommit, connClosed: closed, marker: &m, err: err}
		}
		return outcome{}
	}
	return outcome{phase: phaseBegin, connClosed: true, err: fmt.Errorf("every pooled connection was dead: %w", err)}
}

// Count returns the named counter's total.
func (s *Store) Count(ctx context.Context, name string) (int64, error) {
	c, err := s.Counts(ctx, name)
	return c.Total, err
}

// Counts returns the named counter's total and today's figures. While the
// listener is up it answers from memory, which notifications keep at the
// latest committed values, and which has every counter (cache.sync);
// otherwise it reads the database.
func (s *Store) Counts(ctx context.Context, name string) (Counts, error) {
	e, ok := s.cache.get(name)
	if !ok { // memory can still tell, once it has caught up
		var found bool
		if e, found, ok = s.cache.synced(ctx, name); ok && !found {
			s.stats.memoryReads.Add(1)
			return Counts{}, s.notFound("count", name)
		}
	}
	if ok {
		s.stats.memoryReads.Add(1)
		return s.today(e.counts(name)), nil
	}
	var read entry // apart from e: the closure moves it to the heap
	err := s.Transact(ctx, "count", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		return scanCount(name, tx.QueryRow(ctx, selectCounters+` where c.name = $1`, name), &read)
	})
	if err == nil || errors.Is(err, ErrNotFound) {
		s.stats.databaseReads.Add(1)
	}
	if err != nil {
		return Counts{}, err
	}
	s.cache.apply(name, read)
	return s.today(read.counts(name)), nil
}

// notFound is op's answer for a name memory proves is no counter: the
// error the database's answer would give, counted by the Observer alike,
// but not logged: it is the caller's input, and crawlers try many names.
func (s *Store) notFound(op, name string) error {
	s.observe().Failure(op, kindName(ErrNotFound, nil))
	return fmt.Errorf("%s: counter %q: %w", op, name, ErrNotFound)
}

// selectCounters reads counters with their latest day row, as the
// counters_notify trigger announces them (migrations/003_history.sql).
const selectCounters = `select c.name, c.hits, c.version, c.updated_at, d.day, d.views, d.visitors, d.bots, d.filtered,
	not c.plus_one, not c.page
from counters c left join lateral (
	select * from counter_days where counter = c.name order by day desc limit 1
) d on true`

// scanEntry reads a row of selectCounters.
func scanEntry(row pgx.Row, name *string, e *entry) error {
	var day *time.Time
	var views, visitors, bots, filtered *int64
	if err := row.Scan(name, &e.hits, &e.version, &e.updated, &day, &views, &visitors, &bots, &filtered,
		&e.switches.NoPlusOne, &e.switches.NoPage); err != nil {
		return err
	}
	if day != nil {
		e.day, e.views, e.visitors, e.bots, e.filtered = *day, *views, *visitors, *bots, *filtered
	}
	return nil
}

func scanCount(name string, row pgx.Row, e *entry) error {
	var got string
	err := scanEntry(row, &got, e)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("counter %q: %w", name, ErrNotFound)
	}
	return err
}

// today zeroes the day figures of a counter whose latest day row is older
// than today: nothing was counted today yet.
func (s *Store) today(c Counts) Counts {
	if t := s.Today(); !c.Day.Equal(t) {
		c.Day, c.Views, c.Visitors, c.Bots, c.Filtered = t, 0, 0, 0, 0
	}
	return c
}

// Today is the current day in the store's timezone, as a date at midnight
// UTC (how pgx reads a date).
func (s *Store) Today() time.Time {
	y, m, d := s.cfg.now().In(s.cfg.Location).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Stats are running totals since Open, for tests, benchmarks and metrics.
type Stats struct {
	Writes        int64 // statements that counted hits
	Increments    int64 // hits they counted
	MemoryReads   int64 // counts answered from memory
	DatabaseReads int64 // counts read from the database, found or not
	Listening     bool  // the listener is connected and the memory current
}

type stats struct {
	writes, increments, memoryReads, databaseReads atomic.Int64
}

// Stats returns the running totals.
func (s *Store) Stats() Stats {
	return Stats{
		Writes:        s.stats.writes.Load(),
		Increments:    s.stats.increments.Load(),
		MemoryReads:   s.stats.memoryReads.Load(),
		DatabaseReads: s.stats.databaseReads.Load(),
		Listening:     s.cache.live.Load(),
	}
}
