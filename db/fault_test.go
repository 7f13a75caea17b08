package db

// Faults injected with internal/pgproxy between the store and a real server.
// The database is always checked directly, not through the proxy.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// A COMMIT whose answer is lost is resolved by its transaction id: one the
// server committed is acknowledged with its value, never run again; one
// the server rolled back is retried. Either way the hit counts once.
func TestAmbiguousCommitIsResolved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault     pgproxy.Fault
		outcome   string // what the lookup finds
		wantCalls int64  // callback runs of Transact
	}{
		// The server committed, the client never heard.
		{pgproxy.CutAfterCommit, "committed", 1},
		// The COMMIT never arrived and the server rolled back.
		{pgproxy.CutBeforeCommit, "aborted", 2},
	}
	for _, tt := range tests {
		t.Run(tt.fault.String(), func(t *testing.T) {
			t.Parallel()
			dbURL := testdb.NewMigrated(t)
			proxy, proxied := pgproxy.ForTest(t, dbURL)
			s, logs := newStore(t, proxied, fastPolicy())
			ctx := testCtx(t)

			resolved := func(t *testing.T, before int) {
				t.Helper()
				if proxy.Armed(tt.fault) != 0 {
					t.Fatal("the fault did not fire")
				}
				recs := logs.with("db commit resolved")
				if len(recs) != before+1 {
					t.Fatalf("%d resolutions logged, want 1", len(recs)-before)
				}
				if got := recs[len(recs)-1]["outcome"]; got != tt.outcome {
					t.Errorf("resolution: %v, want %s", got, tt.outcome)
				}
			}

			t.Run("Increment", func(t *testing.T) {
				before := testdb.Hits(t, dbURL, "main")
				resolutions := len(logs.with("db commit resolved"))
				proxy.Arm(tt.fault, 1)
				n, err := s.Increment(ctx, "main")
				if err != nil {
					t.Fatalf("Increment: %v", err)
				}
				resolved(t, resolutions)
				if got := testdb.Hits(t, dbURL, "main"); got != before+1 || n != before+1 {
					t.Errorf("Increment answered %d, the database holds %d; want both %d", n, got, before+1)
				}
			})

			t.Run("Transact", func(t *testing.T) {
				before := testdb.Hits(t, dbURL, "main")
				resolutions := len(logs.with("db commit resolved"))
				proxy.Arm(tt.fault, 1)
				var calls atomic.Int64
				if err := s.Transact(ctx, "increment", pgx.TxOptions{}, countingIncrement(&calls)); err != nil {
					t.Fatalf("Transact: %v", err)
				}
				resolved(t, resolutions)
				if got := calls.Load(); got != tt.wantCalls {
					t.Errorf("callback calls: got %d, want %d", got, tt.wantCalls)
				}
				if got := testdb.Hits(t, dbURL, "main"); got != before+1 {
					t.Errorf("hits in the database: got %d, want %d", got, before+1)
				}
			})
			if final := logs.with("db transaction failed"); len(final) != 0 {
				t.Errorf("final failures logged: %v", final)
			}
		})
	}
}

// resolve tells each fate of a marked transaction: committed, rolled
// back, never heard of, still running (it waits for the end), and nothing
// while the server cannot be asked (unknown, at the deadline). An answer
// "not committed" holds for good: the fence takes the marker's id.
func TestResolve(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	marked := func() (pgx.Tx, marker) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := newMarker(time.Now())
		if _, err := tx.Exec(ctx, insertMarker, m); err != nil {
			t.Fatal(err)
		}
		return tx, m
	}

	tx, m := marked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := s.resolve(ctx, "test", m, nil); got != committed {
			t.Errorf("a committed transaction: %s", got)
		}
	}
	tx, m = marked()
	_ = tx.Rollback(ctx)
	if got := s.resolve(ctx, "test", m, nil); got != aborted {
		t.Errorf("a rolled back transaction: %s", got)
	}
	if got := s.resolve(ctx, "test", newMarker(time.Now()), nil); got != aborted {
		t.Errorf("a marker the server never saw: %s", got)
	}
	// The answer holds: that transaction, or one reusing its marker, can no
	// longer commit.
	if _, err := conn.Exec(ctx, insertMarker, m); sqlState(err) != "23505" {
		t.Errorf("inserting a fenced marker: %v, want a unique violation", err)
	}

	// Still running: the lookup waits on the marker's key until it ends.
	watcher := connect(t, dbURL) // outside the transaction: its view of pg_stat_activity is new each time
	waitForLookupToWait := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var n int
			if err := watcher.QueryRow(ctx, `select count(*) from pg_stat_activity
				where datname = current_database() and wait_event_type = 'Lock' and query like 'insert into commit_markers%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the lookup never waited for the running transaction")
			}
		}
	}
	for _, end := range []struct {
		name string
		do   func(pgx.Tx) error
		want resolution
	}{
		{"commit", func(tx pgx.Tx) error { return tx.Commit(ctx) }, committed},
		{"rollback", func(tx pgx.Tx) error { return tx.Rollback(ctx) }, aborted},
	} {
		tx, m = marked()
		done := make(chan resolution, 1)
		go func() { done <- s.resolve(ctx, "test", m, nil) }()
		waitForLookupToWait()
		select {
		case r := <-done:
			t.Fatalf("the lookup answered %s while the transaction ran", r)
		default:
		}
		if err := end.do(tx); err != nil {
			t.Fatal(err)
		}
		if got := <-done; got != end.want {
			t.Errorf("a transaction that ended with %s while asked about: %s, want %s", end.name, got, end.want)
		}
	}
	if n := len(logs.with("db commit resolved")); n != 6 {
		t.Errorf("%d resolutions logged, want 6", n)
	}

	// The lookup's own COMMIT lost: the next lookup finds what it left.
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	down, downLogs := newStore(t, proxied, fastPolicy())
	for _, f := range []pgproxy.Fault{pgproxy.CutAfterCommit, pgproxy.CutBeforeCommit} {
		proxy.Arm(f, 1)
		if got := down.resolve(ctx, "test", newMarker(time.Now()), nil); got != aborted {
			t.Errorf("a lookup whose first COMMIT was lost (%s): %s", f, got)
		}
		if proxy.Armed(f) != 0 {
			t.Errorf("%s did not hit the lookup's COMMIT", f)
		}
	}

	tx, m = marked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.SetDown(true)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if got := down.resolve(short, "test", m, nil); got != unknowable {
		t.Errorf("with the server unreachable: %s", got)
	}
	if took := time.Since(start); took > 100*time.Millisecond+ResolveGrace+time.Second {
		t.Errorf("the lookup took %s, past its deadline and grace", took)
	}
	// Its caller was told "unknown"; the lookup goes on, and once the
	// server answers, the log says what became of it.
	if n := len(downLogs.with("db commit resolved late")); n != 0 {
		t.Fatalf("resolved late while the server was still down: %d", n)
	}
	proxy.SetDown(false)
	downLogs.waitFor(t, "db commit resolved late", 1)
	if got := downLogs.with("db commit resolved late")[0]["outcome"]; got != "committed" {
		t.Errorf("resolved late as %v, want committed", got)
	}
}

// Markers are made in time order, and markerBefore(t) sorts below every
// marker made at t or later and above every one made before.
func TestMarkersSortByTime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	before, at, after := newMarker(t0.Add(-time.Millisecond)), newMarker(t0), newMarker(t0.Add(time.Millisecond))
	cut := markerBefore(t0)
	if !(bytes.Compare(before[:], cut[:]) < 0 && bytes.Compare(cut[:], at[:]) <= 0 && bytes.Compare(at[:], after[:]) < 0) {
		t.Errorf("markers out of order: %s, cut %s, %s, %s", before, cut, at, after)
	}
	if v := at.String(); v[14] != '7' || !strings.ContainsRune("89ab", rune(v[19])) || len(v) != 36 {
		t.Errorf("%s is not a UUID of version 7", v)
	}
	if a, b := newMarker(t0), newMarker(t0); a == b {
		t.Error("two markers of one millisecond are equal")
	}
}

// A lookup still going on when the store closes ends at once, saying the
// COMMIT is still in doubt and how to look it up by hand.
func TestLateLookupEndsWithTheStore(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	s, logs := newStore(t, proxied, fastPolicy())
	proxy.SetDown(true)
	m := newMarker(time.Now())
	s.resolveLater("test", m, nil)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the lookup")
	}
	recs := logs.with("db commit still in doubt")
	if len(recs) != 1 || recs[0]["marker"] != m.String() {
		t.Fatalf("still-in-doubt records: %v", recs)
	}
	// The operator's query, run as it is, answers for good: never committed.
	lookUp, _ := recs[0]["look_up"].(string)
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	if _, err := conn.Exec(ctx, lookUp, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("the look-up %q: %v", lookUp, err)
	}
	var fence bool
	if err := conn.QueryRow(ctx, "select fence from commit_markers where id = $1", m).Scan(&fence); err != nil || !fence {
		t.Errorf("after the look-up by hand: fence %v, %v; want the fence", fence, err)
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

// An outage is logged in full once, then quietly: later failures and
// their retries at debug, and a line when the database is back with how
// many failed meanwhile.
func TestOutageIsLoggedOnceNotPerRequest(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	s, logs := newStore(t, proxied, fastPolicy())
	ctx := testCtx(t)
	proxy.SetDown(true)
	const failures = 5
	for range failures {
		err := s.Transact(ctx, "probe", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error { return nil })
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("while down: %v, want ErrUnavailable", err)
		}
	}
	byLevel := map[string]int{}
	for _, rec := range logs.with("db transaction failed") {
		byLevel[rec["level"].(string)]++
	}
	if byLevel["ERROR"] != 1 || byLevel["DEBUG"] != failures-1 {
		t.Errorf("final failures by level: %v, want 1 ERROR and %d DEBUG", byLevel, failures-1)
	}
	if got := logs.with("db unavailable: requests fail until it answers; their retries and failures are logged at debug, summed up here every 10s"); len(got) != 1 {
		t.Errorf("%d outage lines, want 1", len(got))
	}
	warned := 0
	for _, rec := range logs.with("db retry") {
		if rec["level"] == "WARN" {
			warned++
		}
	}
	if want := fastPolicy().MaxRetries; warned != want {
		t.Errorf("%d retries logged at WARN, want only the first failure's %d", warned, want)
	}
	proxy.SetDown(false)
	if _, err := s.Increment(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	back := logs.with("db available again")
	if len(back) != 1 || num(t, back[0], "failed") != failures {
		t.Errorf("recovery lines: %v, want one saying %d failed", back, failures)
	}
}

// Markers older than markersKeptFor go; younger ones, which a lookup may
// still need, stay.
func TestPruneMarkers(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	now := time.Now()
	old, young := newMarker(now.Add(-markersKeptFor-time.Minute)), newMarker(now.Add(-markersKeptFor+time.Minute))
	for _, m := range []marker{old, young} {
		if _, err := conn.Exec(ctx, insertMarker, m); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneMarkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, "select id::text from commit_markers where id = any($1) order by id", []marker{old, young})
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || len(left) != 1 || left[0] != young.String() {
		t.Errorf("pruned %d, left %v; want the old one (%s) gone and the young one (%s) kept", n, left, old, young)
	}
}
