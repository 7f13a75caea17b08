package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// safeErr is an error pgconn.SafeToRetry reports as safe: pgx's way of
// saying nothing reached the server.
type safeErr struct{ error }

func (safeErr) SafeToRetry() bool { return true }
func (e safeErr) Unwrap() error   { return e.error }

// connectError is a real error from connecting to a port nobody listens on.
func connectError(t *testing.T) error {
	t.Helper()
	addr := testkit.RefusedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, "postgres://u:p@"+addr+"/x?sslmode=disable&connect_timeout=5")
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("connect to closed port %s: got nil error", addr)
	}
	return err
}

func pgErr(code string) error { return &pgconn.PgError{Code: code, Message: "sqlstate " + code} }

func TestClassify(t *testing.T) {
	t.Parallel()
	plain := errors.New("callback failed")
	tests := []struct {
		name       string
		ph         phase
		err        error
		connClosed bool
		wantRetry  bool
		wantKind   error
	}{
		{"serialization failure in body", phaseBody, pgErr("40001"), false, true, ErrUnavailable},
		{"deadlock in body", phaseBody, pgErr("40P01"), false, true, ErrUnavailable},
		{"admin shutdown in body", phaseBody, pgErr("57P01"), true, true, ErrUnavailable},
		{"crash shutdown in body", phaseBody, pgErr("57P02"), true, true, ErrUnavailable},
		{"cannot connect now in begin", phaseBegin, pgErr("57P03"), false, true, ErrUnavailable},
		{"too many connections in begin", phaseBegin, pgErr("53300"), false, true, ErrUnavailable},
		{"connection failure 08006 in body", phaseBody, pgErr("08006"), true, true, ErrUnavailable},
		{"wrapped serialization failure", phaseBody, fmt.Errorf("update: %w", pgErr("40001")), false, true, ErrUnavailable},
		{"unique violation", phaseBody, pgErr("23505"), false, false, ErrInvalid},
		{"invalid text representation", phaseBody, pgErr("22P02"), false, false, ErrInvalid},
		{"check violation", phaseBody, pgErr("23514"), false, false, ErrInvalid},
		{"undefined table", phaseBody, pgErr("42P01"), false, false, nil},
		{"bad password in begin", phaseBegin, pgErr("28P01"), false, false, ErrUnavailable},
		{"callback's own error, conn open", phaseBody, plain, false, false, nil},
		{"callback's ErrNotFound", phaseBody, fmt.Errorf("counter: %w", ErrNotFound), false, false, nil},
		{"plain error, conn closed", phaseBody, io.ErrUnexpectedEOF, true, true, ErrUnavailable},
		{"safe-to-retry error in body", phaseBody, safeErr{plain}, false, true, ErrUnavailable},
		{"context canceled in body", phaseBody, context.Canceled, false, false, ErrUnavailable},
		{"deadline exceeded in body", phaseBody, fmt.Errorf("query: %w", context.DeadlineExceeded), true, false, ErrUnavailable},
		{"context canceled in begin", phaseBegin, context.Canceled, false, false, ErrUnavailable},
		{"context canceled before commit was sent", phaseCommit, safeErr{context.Canceled}, false, false, ErrUnavailable},
		{"context canceled while committing", phaseCommit, context.Canceled, true, false, ErrOutcomeUnknown},
		{"commit: connection lost", phaseCommit, io.ErrUnexpectedEOF, true, false, ErrOutcomeUnknown},
		{"commit: connection lost, conn open", phaseCommit, plain, false, false, ErrOutcomeUnknown},
		{"commit: not sent (safe to retry)", phaseCommit, safeErr{io.ErrUnexpectedEOF}, true, true, ErrUnavailable},
		// pgx v5.12 reports a connection lost while reading COMMIT's reply
		// as "conn closed", which claims to be safe to retry.
		{"commit: lost as pgx's conn closed", phaseCommit, safeErr{pgconn.ErrConnClosed}, true, false, ErrOutcomeUnknown},
		{"body: pgx's conn closed", phaseBody, safeErr{pgconn.ErrConnClosed}, true, true, ErrUnavailable},
		{"commit: serialization failure", phaseCommit, pgErr("40001"), false, true, ErrUnavailable},
		{"commit: deadlock", phaseCommit, pgErr("40P01"), false, true, ErrUnavailable},
		{"commit: deferred unique violation", phaseCommit, pgErr("23505"), false, false, ErrInvalid},
		{"commit: admin shutdown", phaseCommit, pgErr("57P01"), true, false, ErrOutcomeUnknown},
		{"commit: connection failure 08006", phaseCommit, pgErr("08006"), true, false, ErrOutcomeUnknown},
		{"begin: connect error", phaseBegin, connectError(t), false, true, ErrUnavailable},
		{"begin: plain error", phaseBegin, io.EOF, false, true, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.ph, tt.err, tt.connClosed)
			if got.retry != tt.wantRetry || got.kind != tt.wantKind {
				t.Errorf("classify(%s, %v, connClosed=%v): got retry=%v kind=%v, want retry=%v kind=%v",
					tt.ph, tt.err, tt.connClosed, got.retry, got.kind, tt.wantRetry, tt.wantKind)
			}
		})
	}
}

func TestDelayWithoutJitter(t *testing.T) {
	t.Parallel()
	p := DefaultRetryPolicy()
	p.Jitter = 0
	want := []time.Duration{
		50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second, time.Second,
	}
	for i, w := range want {
		n := i + 1
		for _, r := range []float64{0, 0.5, 0.999} {
			if got := p.delay(n, r); got != w {
				t.Errorf("Delay(%d, %v) with jitter 0: got %s, want %s", n, r, got, w)
			}
		}
	}
	if got := p.delay(10_000, 0.5); got != time.Second {
		t.Errorf("Delay(10000): got %s, want the cap %s", got, time.Second)
	}
}

func TestDelayWithJitter(t *testing.T) {
	t.Parallel()
	for _, j := range []float64{0.1, 0.5, 1} {
		p := DefaultRetryPolicy()
		p.Jitter = j
		for n := 1; n <= 8; n++ {
			p0 := p
			p0.Jitter = 0
			d := p0.delay(n, 0)
			if got := p.delay(n, 0); got != d {
				t.Errorf("jitter %v: Delay(%d, 0): got %s, want the full wait %s", j, n, got, d)
			}
			lo := time.Duration(float64(d) * (1 - j))
			for i := range 100 {
				r := float64(i) / 100
				if got := p.delay(n, r); got < lo || got > d {
					t.Errorf("jitter %v: Delay(%d, %v): got %s, want within [%s, %s]", j, n, r, got, lo, d)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultRetryPolicy()
	tests := []struct {
		name   string
		change func(*RetryPolicy)
		valid  bool
	}{
		{"default", func(*RetryPolicy) {}, true},
		{"no retries, no delays", func(p *RetryPolicy) { *p = RetryPolicy{Factor: 1} }, true},
		{"full jitter", func(p *RetryPolicy) { p.Jitter = 1 }, true},
		{"max delay equals initial", func(p *RetryPolicy) { p.MaxDelay = p.InitialDelay }, true},
		{"factor 1", func(p *RetryPolicy) { p.Factor = 1 }, true},
		{"negative retries", func(p *RetryPolicy) { p.MaxRetries = -1 }, false},
		{"zero initial delay", func(p *RetryPolicy) { p.InitialDelay = 0 }, false},
		{"negative initial delay", func(p *RetryPolicy) { p.InitialDelay = -time.Millisecond }, false},
		{"factor below 1", func(p *RetryPolicy) { p.Factor = 0.5 }, false},
		{"factor 0", func(p *RetryPolicy) { p.Factor = 0 }, false},
		{"factor NaN", func(p *RetryPolicy) { p.Factor = nan() }, false},
		{"factor +Inf", func(p *RetryPolicy) { p.Factor = inf() }, false},
		{"max delay below initial", func(p *RetryPolicy) { p.MaxDelay = p.InitialDelay - 1 }, false},
		{"negative jitter", func(p *RetryPolicy) { p.Jitter = -0.1 }, false},
		{"jitter above 1", func(p *RetryPolicy) { p.Jitter = 1.5 }, false},
		{"jitter NaN", func(p *RetryPolicy) { p.Jitter = nan() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.change(&p)
			err := p.Validate()
			if (err == nil) != tt.valid {
				t.Errorf("Validate(%+v): got %v, want valid=%v", p, err, tt.valid)
			}
			if !tt.valid {
				// Open refuses what Validate refuses, before touching the URL.
				if _, err := Open("postgres://u:p@127.0.0.1:1/x", Config{Retry: p, MaxBatch: 1, MaxQueued: 1}, discard()); err == nil {
					t.Errorf("Open with policy %+v: got nil error", p)
				}
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }
func inf() float64 { z := 0.0; return 1 / z }

// transientFailer returns a callback that runs a real statement and then
// fails with SQLSTATE 40001 the first failures times, and a call counter.
func transientFailer(failures int) (func(context.Context, pgx.Tx) error, *atomic.Int64) {
	var calls atomic.Int64
	return func(ctx context.Context, tx pgx.Tx) error {
		n := calls.Add(1)
		if _, err := tx.Exec(ctx, "update counters set hits = hits + 1 where name = 'main'"); err != nil {
			return err
		}
		if failures < 0 || n <= int64(failures) {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access (simulated)"}
		}
		return nil
	}, &calls
}

func TestTransactRetriesTransientFailures(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())
	before := testdb.Hits(t, dbURL, "main")

	fn, calls := transientFailer(2)
	if err := s.Transact(testCtx(t), "test-op", pgx.TxOptions{}, fn); err != nil {
		t.Fatalf("Transact: got %v, want nil after 2 retries", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("callback calls: got %d, want 3", got)
	}
	// The failed attempts were rolled back: one increment in all.
	if got, want := testdb.Hits(t, dbURL, "main"), before+1; got != want {
		t.Errorf("hits: got %d, want %d", got, want)
	}
	retries := logs.with("db retry")
	if len(retries) != 2 {
		t.Fatalf("retry log records: got %d, want 2: %v", len(retries), retries)
	}
	for i, rec := range retries {
		wantWait := time.Duration(1<<i) * time.Millisecond // 1ms, 2ms
		if got := num(t, rec, "attempt"); got != int64(i+1) {
			t.Errorf("retry %d: attempt=%d, want %d", i+1, got, i+1)
		}
		if got := num(t, rec, "max"); got != 3 {
			t.Errorf("retry %d: max=%d, want 3", i+1, got)
		}
		if got := time.Duration(num(t, rec, "wait")); got != wantWait {
			t.Errorf("retry %d: wait=%s, want %s", i+1, got, wantWait)
		}
		for k, want := range map[string]string{"sqlstate": "40001", "phase": "body", "op": "test-op", "level": "WARN"} {
			if rec[k] != want {
				t.Errorf("retry %d: %s=%v, want %q", i+1, k, rec[k], want)
			}
		}
		if err, _ := rec["err"].(string); !strings.Contains(err, "could not serialize") {
			t.Errorf("retry %d: err=%q, want the error's text", i+1, err)
		}
	}
	if got := logs.with("db transaction failed"); len(got) != 0 {
		t.Errorf("final failure log records after success: %v", got)
	}
}

func TestTransactGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	p := fastPolicy()
	s, logs := newStore(t, dbURL, p)
	before := testdb.Hits(t, dbURL, "main")

	fn, calls := transientFailer(-1)
	err := s.Transact(testCtx(t), "test-op", pgx.TxOptions{}, fn)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Transact always failing with 40001: got %v, want ErrUnavailable", err)
	}
	if sqlState(err) != "40001" {
		t.Errorf("error %v does not wrap the last PgError", err)
	}
	if got, want := calls.Load(), int64(p.MaxRetries+1); got != want {
		t.Errorf("callback calls: got %d, want MaxRetries+1 = %d", got, want)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Errorf("hits: got %d, want %d (every attempt rolled back)", got, before)
	}
	if got := len(logs.with("db retry")); got != p.MaxRetries {
		t.Errorf("retry log records: got %d, want %d", got, p.MaxRetries)
	}
	final := logs.with("db transaction failed")
	if len(final) != 1 {
		t.Fatalf("final failure log records: got %d, want 1", len(final))
	}
	if got := num(t, final[0], "attempts"); got != int64(p.MaxRetries+1) {
		t.Errorf("final log attempts=%d, want %d", got, p.MaxRetries+1)
	}
	if final[0]["level"] != "ERROR" || final[0]["sqlstate"] != "40001" || final[0]["phase"] != "body" {
		t.Errorf("final log record: got %v, want level ERROR, sqlstate 40001, phase body", final[0])
	}
}

func TestTransactDoesNotRetryInvalidInput(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())

	var calls atomic.Int64
	err := s.Transact(testCtx(t), "insert", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		calls.Add(1)
		_, err := tx.Exec(ctx, "insert into counters (name) values ('main')") // a real 23505
		return err
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate insert: got %v, want ErrInvalid", err)
	}
	if sqlState(err) != "23505" {
		t.Errorf("error %v does not wrap the 23505 PgError", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("callback calls: got %d, want 1", got)
	}
	if got := logs.with("db retry"); len(got) != 0 {
		t.Errorf("retry log records: %v, want none", got)
	}
	final := logs.with("db transaction failed")
	if len(final) != 1 || final[0]["level"] != "INFO" {
		t.Errorf("final log records: got %v, want one at INFO", final)
	}
}

func TestTransactDoesNotRetryCallbackError(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())

	own := errors.New("the callback's own error")
	var calls atomic.Int64
	err := s.Transact(testCtx(t), "op", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		calls.Add(1)
		return own
	})
	if !errors.Is(err, own) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	for _, kind := range []error{ErrUnavailable, ErrOutcomeUnknown, ErrInvalid, ErrNotFound} {
		if errors.Is(err, kind) {
			t.Errorf("callback's error came back as %v", kind)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("callback calls: got %d, want 1", got)
	}
	if got := logs.with("db retry"); len(got) != 0 {
		t.Errorf("retry log records: %v, want none", got)
	}
}

func TestTransactCancelDuringWait(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, RetryPolicy{MaxRetries: 3, InitialDelay: time.Hour, Factor: 1, MaxDelay: time.Hour})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fn, calls := transientFailer(-1)
	done := make(chan error, 1)
	go func() { done <- s.Transact(ctx, "op", pgx.TxOptions{}, fn) }()

	logs.waitFor(t, "db retry", 1) // it is now waiting an hour
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Transact cancelled while waiting: got %v, want ErrUnavailable and context.Canceled", err)
		}
		if sqlState(err) != "40001" {
			t.Errorf("error %v does not keep the last attempt's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Transact did not return within 5s of its context being cancelled")
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("callback calls: got %d, want 1", got)
	}
	// Its caller gone, the failure is no database fault: logged as such, low.
	if got := logs.with("db call abandoned: its caller is gone"); len(got) != 1 || got[0]["level"] != "DEBUG" {
		t.Errorf("abandoned log records: got %v, want 1 at DEBUG", got)
	}
	if got := len(logs.with("db transaction failed")); got != 0 {
		t.Errorf("final failure log records: got %d, want none", got)
	}
}

func TestTransactDeadlineShorterThanWait(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, RetryPolicy{MaxRetries: 3, InitialDelay: time.Hour, Factor: 1, MaxDelay: time.Hour})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fn, calls := transientFailer(-1)
	err := s.Transact(ctx, "op", pgx.TxOptions{}, fn)
	if ctx.Err() != nil {
		t.Fatalf("Transact returned only after its deadline (%v): it waited instead of giving up", ctx.Err())
	}
	if !errors.Is(err, ErrUnavailable) || sqlState(err) != "40001" {
		t.Errorf("got %v, want ErrUnavailable wrapping the 40001 error", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("callback calls: got %d, want 1", got)
	}
	if got := logs.with("db retry"); len(got) != 0 {
		t.Errorf("retry log records: %v, want none (no retry fits the deadline)", got)
	}
	if got := len(logs.with("db transaction failed")); got != 1 {
		t.Errorf("final failure log records: got %d, want 1", got)
	}
}

func TestTransactNoRetriesPolicy(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, RetryPolicy{Factor: 1})
	fn, calls := transientFailer(-1)
	if err := s.Transact(testCtx(t), "op", pgx.TxOptions{}, fn); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("callback calls with MaxRetries 0: got %d, want 1", got)
	}
	if got := logs.with("db retry"); len(got) != 0 {
		t.Errorf("retry log records: %v, want none", got)
	}
}
