package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Increment adds one hit to the named counter and returns the new count,
// once it is committed. Each caller gets its own distinct value: concurrent
// increments are combined into one statement (batch.go) that hands out the
// values it added in arrival order.
func (s *Store) Increment(ctx context.Context, name string) (int64, error) {
	if s.batches == nil {
		return s.add(ctx, name, 1)
	}
	return s.batches.increment(ctx, name)
}

// incrementSQL is the one statement that changes a count.
const incrementSQL = `update counters set hits = hits + $2, updated_at = now() where name = $1 returning hits, version`

// add adds n hits in one implicit transaction: a single round trip instead
// of BEGIN, UPDATE, COMMIT. It returns the new count, and keeps it in memory
// for reads.
func (s *Store) add(ctx context.Context, name string, n int) (int64, error) {
	var hits, version int64
	err := s.retry(ctx, "increment", []slog.Attr{slog.Int("n", n)}, func(ctx context.Context) (phase, bool, error) {
		conn, err := s.acquireLive(ctx)
		if err != nil {
			return phaseBegin, false, err
		}
		defer conn.Release()
		rows, _ := conn.Query(ctx, incrementSQL, name, n) // its error is rows.Err
		found := rows.Next()
		if found {
			err = rows.Scan(&hits, &version)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err == nil && !found {
			err = fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		if err == nil {
			return "", false, nil
		}
		return statementPhase(err, rows.CommandTag().String() != ""), conn.Conn().IsClosed(), err
	})
	if err != nil {
		return 0, err
	}
	s.stats.writes.Add(1)
	s.stats.increments.Add(int64(n))
	s.cache.apply(name, hits, version)
	return hits, nil
}

// acquireLive takes a pool connection and pings it, so a connection the
// server or the network closed while it sat in the pool is found before the
// statement is sent (a write to it can seem to succeed, and the statement's
// outcome would then be unknown). A server restart closes them all: each
// dead one is dropped, and the pool dials anew, without spending a retry.
// The ping is a round trip without a commit, small beside the write's.
func (s *Store) acquireLive(ctx context.Context) (*pgxpool.Conn, error) {
	var err error
	for range s.pool.Config().MaxConns + 1 {
		var conn *pgxpool.Conn
		conn, err = s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		if err = conn.Ping(ctx); err == nil {
			return conn, nil
		}
		conn.Release() // a failed ping closed it: the pool discards it
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("ping pooled connection: %w", err)
}

// statementPhase tells a failed single statement that certainly rolled
// back from one that may have committed. Its implicit transaction commits
// only after the statement completed (CommandComplete), and the server
// sends its messages in order, so any error from the server that came
// before CommandComplete, even a FATAL from a server shutting down, means
// the statement was rolled back. So does an answer of no row.
func statementPhase(err error, completed bool) phase {
	var pgErr *pgconn.PgError
	if errors.Is(err, ErrNotFound) || (errors.As(err, &pgErr) && !completed) {
		return phaseBody
	}
	return phaseStatement
}

// Count returns the named counter's hits. While the listener is up it
// answers from memory, which notifications keep at the latest committed
// value; otherwise it reads the database.
func (s *Store) Count(ctx context.Context, name string) (int64, error) {
	if hits, ok := s.cache.get(name); ok {
		s.stats.memoryReads.Add(1)
		return hits, nil
	}
	var hits, version int64
	err := s.Transact(ctx, "count", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		return scanCount(name, tx.QueryRow(ctx, `select hits, version from counters where name = $1`, name), &hits, &version)
	})
	if err != nil {
		return 0, err
	}
	s.stats.databaseReads.Add(1)
	s.cache.apply(name, hits, version)
	return hits, nil
}

func scanCount(name string, row pgx.Row, dest ...any) error {
	err := row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("counter %q: %w", name, ErrNotFound)
	}
	return err
}

// Stats are running totals since Open, for tests, benchmarks and metrics.
type Stats struct {
	Writes        int64 // statements that added hits
	Increments    int64 // hits they added
	MemoryReads   int64 // counts answered from memory
	DatabaseReads int64 // counts read from the database
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
