// Package db keeps the counters in PostgreSQL through pgx. Every statement
// runs inside Transact, the one retry function; the package knows nothing of
// HTTP and translates driver errors into the kinds in errors.go.
package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/hitcounter/hitcounter/migrations"
)

// versionTable is where tern records the schema version; the same name the
// tern CLI uses by default, so `tern migrate` and `-migrate` agree.
const versionTable = "schema_version"

// Store is the counters table behind a connection pool.
type Store struct {
	pool   *pgxpool.Pool
	retry  RetryPolicy
	log    *slog.Logger
	schema int32 // the version of the embedded migrations
}

// Open makes a pool for databaseURL. It does not connect: Ping does, so a
// server that is down at start is reported by the caller's choice of
// patience, and a store can be built against a database that comes later.
func Open(databaseURL string, retry RetryPolicy, log *slog.Logger) (*Store, error) {
	if err := retry.Validate(); err != nil {
		return nil, err
	}
	schema, err := latestVersion(migrations.FS)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("invalid database URL: expected postgres://user:password@host:port/dbname")
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return &Store{pool: pool, retry: retry, log: log, schema: schema}, nil
}

// Close waits for borrowed connections to come back and closes them all.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers, with the usual retries.
func (s *Store) Ping(ctx context.Context) error {
	return s.Transact(ctx, "ping", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "select 1")
		return err
	})
}

// Increment adds one hit to the named counter and returns the new count.
// Concurrent increments serialize on the row lock, so each caller gets its
// own distinct value.
func (s *Store) Increment(ctx context.Context, name string) (int64, error) {
	var n int64
	err := s.Transact(ctx, "increment", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		return scanCount(name, tx.QueryRow(ctx,
			`update counters set hits = hits + 1, updated_at = now() where name = $1 returning hits`,
			name), &n)
	})
	return n, err
}

// Count returns the named counter's hits without changing them.
func (s *Store) Count(ctx context.Context, name string) (int64, error) {
	var n int64
	err := s.Transact(ctx, "count", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		return scanCount(name, tx.QueryRow(ctx, `select hits from counters where name = $1`, name), &n)
	})
	return n, err
}

func scanCount(name string, row pgx.Row, n *int64) error {
	err := row.Scan(n)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("counter %q: %w", name, ErrNotFound)
	}
	return err
}

// Ready reports whether the database answers and its schema is at least at
// the version of the embedded migrations. It does not retry: a readiness probe
// wants the state now, and the prober asks again.
func (s *Store) Ready(ctx context.Context) error {
	var got int32
	err := s.pool.QueryRow(ctx, "select version from "+versionTable).Scan(&got)
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
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
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

func latestVersion(fsys fs.FS) (int32, error) {
	names, err := migrate.FindMigrations(fsys)
	if err != nil {
		return 0, fmt.Errorf("find migrations: %w", err)
	}
	return int32(len(names)), nil
}
