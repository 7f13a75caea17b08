package db

// Faults injected with internal/pgproxy between the store and a real server.
// The database is always checked directly, not through the proxy.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// countingIncrement is what Increment does, in a callback that counts its calls.
func countingIncrement(calls *atomic.Int64) func(context.Context, pgx.Tx) error {
	return func(ctx context.Context, tx pgx.Tx) error {
		calls.Add(1)
		_, err := tx.Exec(ctx, "update counters set hits = hits + 1, updated_at = now() where name = 'main'")
		return err
	}
}

func TestAmbiguousCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault     pgproxy.Fault
		wantDelta int64 // what reached the database
	}{
		// The server committed, the client never heard: a retry would
		// count the hit twice.
		{pgproxy.CutAfterCommit, 1},
		// The COMMIT never arrived and the server rolled back, but the
		// client cannot know that either.
		{pgproxy.CutBeforeCommit, 0},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			t.Parallel()
			dbURL := testdb.NewMigrated(t)
			proxy, proxied := pgproxy.ForTest(t, dbURL)
			s, logs := newStore(t, proxied, fastPolicy())
			ctx := testCtx(t)

			t.Run("Increment", func(t *testing.T) {
				before := testdb.Hits(t, dbURL, "main")
				proxy.Arm(tt.fault, 1)
				_, err := s.Increment(ctx, "main")
				if !errors.Is(err, ErrOutcomeUnknown) {
					t.Fatalf("Increment: got %v, want ErrOutcomeUnknown", err)
				}
				if proxy.Armed(tt.fault) != 0 {
					t.Fatal("the fault did not fire")
				}
				if got, want := testdb.Hits(t, dbURL, "main"), before+tt.wantDelta; got != want {
					t.Errorf("hits in the database: got %d, want %d", got, want)
				}
			})

			t.Run("Transact", func(t *testing.T) {
				before := testdb.Hits(t, dbURL, "main")
				retriesBefore := len(logs.with("db retry"))
				proxy.Arm(tt.fault, 1)
				var calls atomic.Int64
				err := s.Transact(ctx, "increment", pgx.TxOptions{}, countingIncrement(&calls))
				if !errors.Is(err, ErrOutcomeUnknown) {
					t.Fatalf("Transact: got %v, want ErrOutcomeUnknown", err)
				}
				if got := calls.Load(); got != 1 {
					t.Errorf("callback calls: got %d, want 1 (an unknown outcome is never retried)", got)
				}
				if got, want := testdb.Hits(t, dbURL, "main"), before+tt.wantDelta; got != want {
					t.Errorf("hits in the database: got %d, want %d", got, want)
				}
				if got := len(logs.with("db retry")); got != retriesBefore {
					t.Errorf("retry log records: got %d new, want none", got-retriesBefore)
				}
				final := logs.with("db transaction failed")
				if len(final) == 0 {
					t.Fatal("no final failure log record")
				}
				if last := final[len(final)-1]; last["phase"] != "commit" || last["level"] != "ERROR" {
					t.Errorf("final log record: got %v, want phase commit at ERROR", last)
				}
			})

			// The pool dropped the cut connection: the store works on.
			before := testdb.Hits(t, dbURL, "main")
			n, err := s.Increment(ctx, "main")
			if err != nil {
				t.Fatalf("Increment after the faults: %v", err)
			}
			if n != before+1 {
				t.Errorf("Increment after the faults: got %d, want %d", n, before+1)
			}
		})
	}
}

func TestDatabaseDownAndRecovery(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	p := fastPolicy()
	s, logs := newStore(t, proxied, p)
	ctx := testCtx(t)

	// Leave an idle connection in the pool, to be cut by the outage.
	before, err := s.Increment(ctx, "main")
	if err != nil {
		t.Fatalf("Increment before the outage: %v", err)
	}

	proxy.SetDown(true)
	_, err = s.Increment(ctx, "main")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Increment while down: got %v, want ErrUnavailable", err)
	}
	if got := len(logs.with("db retry")); got != p.MaxRetries {
		t.Errorf("retry log records: got %d, want MaxRetries = %d", got, p.MaxRetries)
	}
	final := logs.with("db transaction failed")
	if len(final) != 1 {
		t.Fatalf("final failure log records: got %d, want 1", len(final))
	}
	if got := num(t, final[0], "attempts"); got != int64(p.MaxRetries+1) {
		t.Errorf("attempts while down: got %d, want MaxRetries+1 = %d", got, p.MaxRetries+1)
	}
	if final[0]["phase"] != "begin" {
		t.Errorf("final failure phase: got %v, want begin", final[0]["phase"])
	}
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Errorf("hits after a failed Increment: got %d, want %d", got, before)
	}

	proxy.SetDown(false)
	n, err := s.Increment(ctx, "main")
	if err != nil {
		t.Fatalf("Increment after recovery: %v", err)
	}
	if n != before+1 {
		t.Errorf("Increment after recovery: got %d, want %d", n, before+1)
	}
}

// A write whose server session is terminated while it waits for the row
// lock gets a FATAL before its statement completed: rolled back for sure,
// so it is retried on a new connection and counted once.
func TestTerminatedWriteIsRetried(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	release := lockCounter(t, dbURL)
	done := make(chan error, 1)
	go func() {
		_, err := s.Increment(ctx, "main")
		done <- err
	}()
	waitBlocked(t, dbURL, 1)
	execSQL(t, dbURL, `select pg_terminate_backend(pid) from pg_stat_activity
		where datname = current_database() and wait_event_type = 'Lock'`)
	logs.waitFor(t, "db retry", 1)
	release()
	if err := <-done; err != nil {
		t.Fatalf("Increment after its session was terminated: %v", err)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 1 {
		t.Errorf("hits: got %d, want 1", got)
	}
	retry := logs.with("db retry")[0]
	if retry["sqlstate"] != "57P01" || retry["op"] != "increment" {
		t.Errorf("retry log: got %v, want op increment with sqlstate 57P01", retry)
	}
}
