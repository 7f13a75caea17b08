// Package db keeps the counters in PostgreSQL through pgx. Every statement
// runs inside Transact, the one retry function; the package knows nothing of
// HTTP and translates driver errors into the kinds in errors.go.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hitcounter/hitcounter/migrations"
)

// Store is the counters table behind a connection pool, with the latest
// committed values kept in memory (listen.go) and concurrent increments of
// one counter combined into one statement (batch.go).
type Store struct {
	pool   *pgxpool.Pool
	cfg    Config
	log    *slog.Logger
	schema int32 // the version of the embedded migrations

	batches *batcher // nil when Config.OnePerHit
	cache   *cache
	salts   saltCache
	stats   stats

	outage     outage
	outageFlag atomic.Bool // an outage is on: retries log at debug

	// The listener, the midnight salt rotation and the marker pruning:
	// stopped and waited for by Close.
	stopBackground context.CancelFunc
	background     sync.WaitGroup

	// Lookups of COMMITs in doubt that outlive their caller (resolve.go).
	late     sync.WaitGroup
	lateCtx  context.Context
	lateStop context.CancelFunc
}

// Config tunes the store. Start from DefaultConfig.
type Config struct {
	Retry RetryPolicy
	// OnePerHit turns coalescing off: every increment is its own
	// transaction. Only for comparison (make bench).
	OnePerHit bool
	// MaxBatch bounds how many increments of one counter one statement adds.
	MaxBatch int
	// MaxQueued bounds the increments of one counter waiting for their
	// batch; more are refused at once as ErrUnavailable.
	MaxQueued int
	// Location is the timezone of "today" for day rows and visitors.
	Location *time.Location
	// AutoCreate makes a hit of an unknown counter create it, as long as
	// there are fewer than MaxCounters counters.
	AutoCreate  bool
	MaxCounters int
	// Now is the clock (tests set it); nil is time.Now.
	Now func() time.Time
	// Observer hears retries, failures, batches and resolutions (metrics);
	// nil: nobody.
	Observer Observer
	// Background starts, with Open, the work a server needs: the listener
	// that keeps every counter in memory, the midnight salt rotation and
	// the pruning of commit markers. Off, the store reads the database for
	// each answer and starts nothing: a one-shot command (the owner's
	// controls) neither waits for nor logs any of it.
	Background bool
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// DefaultConfig coalesces increments in batches of up to 1000, with up to
// 10 000 waiting per counter: far more than a 2-core server receives within
// one write's round trip. Days are in UTC; counters are made by their owner
// (auto-creation off, and bounded to 1000 counters when switched on). It is
// a server's: the background work is on.
func DefaultConfig() Config {
	return Config{Retry: DefaultRetryPolicy(), MaxBatch: 1000, MaxQueued: 10000,
		Location: time.UTC, MaxCounters: 1000, Background: true}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if c.MaxBatch < 1 {
		return fmt.Errorf("batch size must be ≥ 1, got %d", c.MaxBatch)
	}
	if c.MaxQueued < c.MaxBatch {
		return fmt.Errorf("queue bound (%d) must be ≥ the batch size (%d)", c.MaxQueued, c.MaxBatch)
	}
	if c.Location == nil {
		return errors.New("no timezone for days")
	}
	if c.MaxCounters < 1 {
		return fmt.Errorf("counter limit must be ≥ 1, got %d", c.MaxCounters)
	}
	return nil
}

// Open makes a pool for databaseURL and, with Config.Background, starts the
// listener that keeps the in-memory counts fresh and the daily work. It does not wait for the database: Ping does, so a
// server that is down at start is reported by the caller's choice of
// patience, and a store can be built against a database that comes later.
// Close stops everything Open started.
func Open(databaseURL string, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	schema, err := migrations.Latest()
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("invalid database URL: expected postgres://user:password@host:port/dbname")
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	s := &Store{pool: pool, cfg: cfg, log: log, schema: schema, cache: newCache()}
	s.lateCtx, s.lateStop = context.WithCancel(context.Background())
	s.salts.init()
	if !cfg.OnePerHit {
		s.batches = newBatcher(s.add, cfg.MaxBatch, cfg.MaxQueued)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	if cfg.Background {
		s.background.Go(func() { s.listen(ctx, poolCfg.ConnConfig) })
		s.background.Go(func() { s.rotateDaily(ctx) })
		s.background.Go(func() { s.pruneMarkers(ctx) })
	}
	return s, nil
}

// Close stops the background goroutines and waits for them, so none uses
// the pool or the log once it returns; then it waits for borrowed
// connections to come back and closes them all.
func (s *Store) Close() {
	s.stopBackground()
	s.background.Wait()
	s.lateStop()
	s.late.Wait()
	s.pool.Close()
}

// Ping checks that the database answers, with the usual retries.
func (s *Store) Ping(ctx context.Context) error {
	return s.Transact(ctx, "ping", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "select 1")
		return err
	})
}

// Ready reports whether the database answers and its schema is at least at
// the version of the embedded migrations. It does not retry: a readiness probe
// wants the state now, and the prober asks again.
func (s *Store) Ready(ctx context.Context) error {
	var got int32
	err := s.pool.QueryRow(ctx, "select version from "+migrations.VersionTable).Scan(&got)
	if err != nil {
		return fmt.Errorf("%w: read schema version: %w", ErrUnavailable, err)
	}
	// A newer schema is fine: during a rolling upgrade the new release
	// migrates while this one still serves.
	if got < s.schema {
		return fmt.Errorf("%w: schema at version %d, this release needs %d (run the migrations)", ErrUnavailable, got, s.schema)
	}
	return nil
}

// Migrate brings the schema to the latest embedded migration with tern,
// which holds an advisory lock so several starting instances take turns.
func (s *Store) Migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w: %w", ErrUnavailable, err)
	}
	defer conn.Release()
	m, err := migrations.NewMigrator(ctx, conn.Conn())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	from, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	to, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "schema migrated", slog.Int("from", int(from)), slog.Int("to", int(to)))
	return nil
}

// PoolStats is the connection pool's state, for metrics.
type PoolStats struct {
	Acquired, Idle, Total, Max int32
	Acquires, EmptyAcquires    int64
	AcquireWait                time.Duration
}

// PoolStats reads the pool's state now.
func (s *Store) PoolStats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{
		Acquired: st.AcquiredConns(), Idle: st.IdleConns(), Total: st.TotalConns(), Max: st.MaxConns(),
		Acquires: st.AcquireCount(), EmptyAcquires: st.EmptyAcquireCount(), AcquireWait: st.AcquireDuration(),
	}
}
