package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RetryPolicy says how often and how patiently a transaction is retried.
// Retry n (1-based) waits InitialDelay·Factor^(n-1), capped at MaxDelay, then
// shortened by a random fraction of at most Jitter, so clients that failed
// together do not come back together.
type RetryPolicy struct {
	MaxRetries   int           // retries after the first attempt; 0 disables retrying
	InitialDelay time.Duration // wait before the first retry
	Factor       float64       // growth of the wait per retry, ≥ 1
	MaxDelay     time.Duration // cap on a single wait
	Jitter       float64       // 0 = exact waits, 1 = full jitter (anywhere in [0, wait])
}

// DefaultRetryPolicy fits a request path: 4 retries waiting about 50, 100,
// 200 and 400 ms (at most 750 ms in all), well inside a request deadline of
// a few seconds.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxRetries:   4,
		InitialDelay: 50 * time.Millisecond,
		Factor:       2,
		MaxDelay:     time.Second,
		Jitter:       0.5,
	}
}

// Validate reports a policy that cannot work, so a typo in the configuration
// fails at start instead of on the first outage.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxRetries < 0:
		return fmt.Errorf("retries must be ≥ 0, got %d", p.MaxRetries)
	case p.MaxRetries > 0 && p.InitialDelay <= 0:
		return fmt.Errorf("retry initial delay must be > 0, got %s", p.InitialDelay)
	case p.Factor < 1 || math.IsNaN(p.Factor) || math.IsInf(p.Factor, 0):
		return fmt.Errorf("retry backoff factor must be a finite number ≥ 1, got %v", p.Factor)
	case p.MaxDelay < p.InitialDelay:
		return fmt.Errorf("retry max delay (%s) must be ≥ the initial delay (%s)", p.MaxDelay, p.InitialDelay)
	case p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter):
		return fmt.Errorf("retry jitter must be between 0 and 1, got %v", p.Jitter)
	}
	return nil
}

// delay is the wait before retry n (1-based); r in [0, 1) draws the jitter.
func (p RetryPolicy) delay(n int, r float64) time.Duration {
	d := float64(p.InitialDelay) * math.Pow(p.Factor, float64(n-1))
	if d > float64(p.MaxDelay) {
		d = float64(p.MaxDelay)
	}
	return time.Duration(d - d*p.Jitter*r)
}

// phase is the step of a transaction that failed; it decides whether a
// failure is safe to retry.
type phase string

const (
	phaseBegin  phase = "begin"  // connect or BEGIN: nothing was done yet
	phaseBody   phase = "body"   // statements: no COMMIT was sent, the server rolls back
	phaseCommit phase = "commit" // COMMIT: the outcome may be unknown
)

// outcome is how one attempt of a transaction ended.
type outcome struct {
	phase      phase // where it failed; "" when it succeeded
	connClosed bool  // the connection was closed by the failure
	// marker is the one the transaction inserted before COMMIT was sent
	// (nil: none), so a COMMIT lost in flight can be looked up (resolve.go).
	marker *marker
	err    error
}

// verdict is what the retry loop does with a failed attempt.
type verdict struct {
	retry bool
	kind  error // one of the Err* kinds, or nil to return the error as it is
}

// classify decides from the phase and the error alone (SQLSTATE, pgx's own
// facts), never from message text.
func classify(ph phase, err error, connClosed bool) verdict {
	var pgErr *pgconn.PgError
	isPg := errors.As(err, &pgErr)

	// pgx (v5.12) can report a connection lost while reading COMMIT's reply
	// as its "conn closed" error, which claims SafeToRetry although COMMIT
	// was sent, so at COMMIT that error proves nothing.
	if ph == phaseCommit && (!pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed)) {
		// COMMIT went out. Only an error the server sent about the
		// transaction itself proves it was rolled back.
		if !isPg {
			return verdict{kind: ErrOutcomeUnknown}
		}
		switch {
		case pgErr.Code == "40001" || pgErr.Code == "40P01":
			return verdict{retry: true, kind: ErrUnavailable}
		case isInputError(pgErr.Code):
			return verdict{kind: ErrInvalid} // deferred constraint: rolled back
		default:
			return verdict{kind: ErrOutcomeUnknown} // e.g. 57P01 while committing
		}
	}

	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return verdict{kind: ErrUnavailable}
	}
	if isPg {
		switch {
		case transientSQLState(pgErr.Code):
			return verdict{retry: true, kind: ErrUnavailable}
		case isInputError(pgErr.Code):
			return verdict{kind: ErrInvalid}
		case ph == phaseBegin:
			return verdict{kind: ErrUnavailable} // e.g. bad password: can't connect, retrying won't help
		default:
			return verdict{}
		}
	}
	// Not a server error: a connection failure (refused, reset, EOF) or the
	// callback's own error. Before COMMIT a dead connection means the server
	// rolled back, so the attempt can run again.
	if ph == phaseBegin || connClosed || pgconn.SafeToRetry(err) {
		return verdict{retry: true, kind: ErrUnavailable}
	}
	return verdict{}
}

// transientSQLState lists the SQLSTATEs after which the same transaction may
// well succeed: serialization failure, deadlock, server shutting down or
// starting, too many connections, and connection exceptions (class 08).
func transientSQLState(code string) bool {
	switch code {
	case "40001", "40P01", "57P01", "57P02", "57P03", "53300", "53400":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// isInputError: data exceptions (22) and integrity violations (23).
func isInputError(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Transact runs fn inside one transaction and commits it, retrying transient
// failures with the store's RetryPolicy.
//
// fn may run more than once, so it must do nothing but its statements on tx.
// A read-write transaction inserts its marker before COMMIT, so a COMMIT
// whose answer was lost is looked up rather than guessed (resolve.go); only
// when that cannot tell does it return an error wrapping ErrOutcomeUnknown,
// and such a failure is never retried. A read-only transaction has no
// marker and needs none: it changed nothing, so it runs again.
func (s *Store) Transact(ctx context.Context, op string, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if opts.AccessMode == pgx.ReadOnly {
		return s.transactIdempotent(ctx, op, opts, fn)
	}
	return s.retry(ctx, op, nil, func(ctx context.Context) outcome {
		return s.attempt(ctx, opts, fn, true)
	})
}

// transactIdempotent is Transact for a transaction that may be applied
// twice with the same effect: a COMMIT lost in flight is retried like a
// failure before it, without a lookup.
func (s *Store) transactIdempotent(ctx context.Context, op string, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.retry(ctx, op, nil, func(ctx context.Context) outcome {
		o := s.attempt(ctx, opts, fn, false)
		if o.phase == phaseCommit {
			o.phase = phaseBody
		}
		return o
	})
}

// retry is the one retry loop every database call goes through (Transact,
// and the increment of counters.go). It runs attempt until it succeeds,
// fails for good, or the context ends. Every retry is logged (attempt,
// wait, phase, SQLSTATE and attrs), and so is the final failure. A COMMIT
// in doubt whose attempt inserted a marker is resolved: committed is
// success, aborted is retried like any failure before COMMIT.
func (s *Store) retry(ctx context.Context, op string, attrs []slog.Attr, attempt func(context.Context) outcome) error {
	p := s.cfg.Retry
	for n := 1; ; n++ {
		o := attempt(ctx)
		if o.err == nil {
			s.outageOver(ctx)
			return nil
		}
		ph, err := o.phase, o.err
		v := classify(ph, err, o.connClosed)
		if v.kind == ErrOutcomeUnknown && o.marker != nil {
			switch s.resolve(ctx, op, *o.marker, attrs) {
			case committed:
				return nil
			case aborted:
				v = verdict{retry: true, kind: ErrUnavailable}
			}
		}
		var wait time.Duration
		giveUp := !v.retry || n > p.MaxRetries
		if !giveUp {
			wait = p.delay(n, rand.Float64())
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				giveUp = true // the caller would be gone before the retry starts
			}
		}
		if giveUp {
			return s.fail(ctx, op, attrs, n, ph, v.kind, err)
		}
		s.observe().Retry(op, string(ph), sqlState(err))
		level := slog.LevelWarn
		if s.outageFlag.Load() {
			level = slog.LevelDebug // summed up by the outage's lines (outage.go)
		}
		s.log.LogAttrs(ctx, level, "db retry", append([]slog.Attr{
			slog.String("op", op),
			slog.Int("attempt", n),
			slog.Int("max", p.MaxRetries),
			slog.Duration("wait", wait),
			slog.String("phase", string(ph)),
			slog.String("sqlstate", sqlState(err)),
			slog.Any("err", err)}, attrs...)...)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.fail(ctx, op, attrs, n, ph, ErrUnavailable, fmt.Errorf("%w (last error: %w)", context.Cause(ctx), err))
		case <-t.C:
		}
	}
}

// attempt runs one begin → fn → commit and reports the phase that failed.
// With mark, the transaction inserts a new marker before COMMIT.
func (s *Store) attempt(ctx context.Context, opts pgx.TxOptions, fn func(context.Context, pgx.Tx) error, mark bool) outcome {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return outcome{phase: phaseBegin, err: err}
	}
	var m *marker
	err = fn(ctx, tx)
	if err == nil && mark {
		mk := newMarker(s.cfg.now())
		m = &mk
		_, err = tx.Exec(ctx, insertMarker, mk)
	}
	if err != nil {
		closed := tx.Conn().IsClosed()
		// Rollback's own error adds nothing: the body error is the story, and a
		// broken connection is discarded by the pool either way.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return outcome{phase: phaseBody, connClosed: closed, err: err}
	}
	if err := tx.Commit(ctx); err != nil {
		return outcome{phase: phaseCommit, connClosed: tx.Conn().IsClosed(), marker: m, err: err}
	}
	return outcome{}
}

// fail logs the final failure once and returns it wrapped in its kind.
func (s *Store) fail(ctx context.Context, op string, attrs []slog.Attr, attempts int, ph phase, kind, err error) error {
	level, msg := slog.LevelError, "db transaction failed"
	switch {
	case kind == ErrInvalid || kind == ErrNotFound || (kind == nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrInvalid))):
		level = slog.LevelInfo // the caller's input, not the database's health
	case errors.Is(err, context.Canceled):
		// The caller went away (a client that closed its connection): not
		// the database's doing, and nobody is waiting for the answer.
		level, msg = slog.LevelDebug, "db call abandoned: its caller is gone"
	case kind == ErrUnavailable:
		s.outageFlag.Store(true)
		level = s.outageFailed(ctx, op)
	}
	s.observe().Failure(op, kindName(kind, err))
	s.log.LogAttrs(ctx, level, msg, append([]slog.Attr{
		slog.String("op", op),
		slog.Int("attempts", attempts),
		slog.String("phase", string(ph)),
		slog.String("sqlstate", sqlState(err)),
		slog.Any("err", err)}, attrs...)...)
	if kind == nil || errors.Is(err, kind) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, kind, err)
}
