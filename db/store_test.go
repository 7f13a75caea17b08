package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
	"github.com/hitcounter/hitcounter/migrations"
)

func TestIncrementReturnsConsecutiveValues(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)

	start, err := s.Count(ctx, "main")
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	for i := int64(1); i <= 3; i++ {
		n, err := s.Increment(ctx, "main")
		if err != nil {
			t.Fatalf("Increment %d: %v", i, err)
		}
		if n != start+i {
			t.Errorf("Increment %d: got %d, want %d", i, n, start+i)
		}
	}
	if got := testdb.Hits(t, dbURL, "main"); got != start+3 {
		t.Errorf("hits in the database: got %d, want %d", got, start+3)
	}
}

func TestCountDoesNotChangeTheValue(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)

	if _, err := s.Increment(ctx, "main"); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	want := testdb.Hits(t, dbURL, "main")
	for i := range 3 {
		got, err := s.Count(ctx, "main")
		if err != nil {
			t.Fatalf("Count %d: %v", i+1, err)
		}
		if got != want {
			t.Errorf("Count %d: got %d, want %d", i+1, got, want)
		}
	}
	if got := testdb.Hits(t, dbURL, "main"); got != want {
		t.Errorf("hits after Count: got %d, want %d", got, want)
	}
}

// Without the listener, the database tells an unknown counter, and says
// so in the log at info (TestUnknownNamesAreAnsweredFromMemory: with it).
func TestUnknownCounter(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())
	s.stopBackground()
	s.background.Wait()
	ctx := testCtx(t)

	if _, err := s.Increment(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Increment of an unknown counter: got %v, want ErrNotFound", err)
	}
	if _, err := s.Count(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Count of an unknown counter: got %v, want ErrNotFound", err)
	}
	if got := logs.with("db retry"); len(got) != 0 {
		t.Errorf("retry log records: %v, want none", got)
	}
	recs := logs.with("db transaction failed")
	if len(recs) != 2 {
		t.Fatalf("%d final failures logged, want 2 (the increment, the read)", len(recs))
	}
	for _, rec := range recs {
		if rec["level"] != "INFO" {
			t.Errorf("not-found logged at %v, want INFO (not a database fault): %v", rec["level"], rec)
		}
	}
}

func TestReadyAndMigrate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)

	t.Run("migrated", func(t *testing.T) {
		s, _ := newStore(t, testdb.NewMigrated(t), fastPolicy())
		if err := s.Ready(ctx); err != nil {
			t.Errorf("Ready on a migrated database: %v", err)
		}
	})

	t.Run("older or newer schema", func(t *testing.T) {
		dbURL := testdb.NewMigrated(t)
		s, _ := newStore(t, dbURL, fastPolicy())
		setVersion := func(v int32) {
			t.Helper()
			if _, err := s.pool.Exec(ctx, "update "+migrations.VersionTable+" set version = $1", v); err != nil {
				t.Fatal(err)
			}
		}
		setVersion(s.schema - 1)
		if err := s.Ready(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ready on an older schema: got %v, want ErrUnavailable", err)
		}
		// A newer release has migrated while this one still serves.
		setVersion(s.schema + 1)
		if err := s.Ready(ctx); err != nil {
			t.Errorf("Ready on a newer schema: %v", err)
		}
	})

	t.Run("unmigrated", func(t *testing.T) {
		dbURL := testdb.New(t)
		s, logs := newStore(t, dbURL, fastPolicy())
		if err := s.Ready(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Ready on an empty database: got %v, want ErrUnavailable", err)
		}
		for i := range 2 { // idempotent
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate %d: %v", i+1, err)
			}
			if err := s.Ready(ctx); err != nil {
				t.Errorf("Ready after Migrate %d: %v", i+1, err)
			}
		}
		if n, err := s.Increment(ctx, "main"); err != nil || n != 1 {
			t.Errorf("Increment after Migrate: got %d, %v; want 1, nil", n, err)
		}
		migrated := logs.with("schema migrated")
		if len(migrated) != 2 {
			t.Fatalf("schema migrated log records: got %d, want 2", len(migrated))
		}
		if from, to := num(t, migrated[0], "from"), num(t, migrated[0], "to"); from != 0 || to < 1 {
			t.Errorf("first Migrate logged from=%d to=%d, want from 0 to ≥ 1", from, to)
		}
		if from, to := num(t, migrated[1], "from"), num(t, migrated[1], "to"); from != to {
			t.Errorf("second Migrate logged from=%d to=%d, want no change", from, to)
		}
	})

	t.Run("server down", func(t *testing.T) {
		s, _ := newStore(t, "postgres://u:p@"+testkit.RefusedAddr(t)+"/x?sslmode=disable", fastPolicy())
		if err := s.Ready(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ready with no server: got %v, want ErrUnavailable", err)
		}
		if err := s.Migrate(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Migrate with no server: got %v, want ErrUnavailable", err)
		}
	})
}

func TestOpenDoesNotLeakPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Passw0rd"
	for _, u := range []string{
		"postgres://user:" + secret + "@localhost:notaport/db",
		"postgres://user:" + secret + "@[::1/db",
		"postgres://user:" + secret + "@localhost/db?sslmode=bogus",
		"postgres://user:" + secret + "@localhost/db?pool_max_conns=many",
		"host=localhost password=" + secret + " port=abc",
		"%zz" + secret,
	} {
		s, err := Open(u, DefaultConfig(), discard())
		if err == nil {
			s.Close()
			t.Errorf("Open(%q): got nil error", u)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q): error %q contains the password", u, err)
		}
	}

	// Nor does a failure to connect.
	s, logs := newStore(t, "postgres://user:"+secret+"@"+testkit.RefusedAddr(t)+"/db?sslmode=disable", fastPolicy())
	err := s.Ping(testCtx(t))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with no server: got %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("Ping error %q contains the password", err)
	}
	for _, rec := range append(logs.with("db retry"), logs.with("db transaction failed")...) {
		if strings.Contains(rec["err"].(string), secret) {
			t.Errorf("log record %v contains the password", rec)
		}
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, testdb.NewMigrated(t), fastPolicy())
	if err := s.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func BenchmarkIncrement(b *testing.B) {
	dbURL := testdb.NewMigrated(b)
	s, _ := newStore(b, testdb.WithQuery(b, dbURL, "pool_max_conns", "20"), DefaultRetryPolicy())
	ctx := context.Background()
	if _, err := s.Increment(ctx, "main"); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Increment(ctx, "main"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCount(b *testing.B) {
	dbURL := testdb.NewMigrated(b)
	s, _ := newStore(b, dbURL, DefaultRetryPolicy())
	ctx := context.Background()
	if _, err := s.Count(ctx, "main"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Count(ctx, "main"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite compares ways of sending one increment with pgx, one
// writer at a time, so each op is a write's latency: BEGIN, UPDATE and
// COMMIT as three round trips (the old path), the same three pipelined in
// one round trip, one statement in an implicit transaction, and that
// statement after a ping (what add does). `make bench` runs it on a server
// with durable commits.
func BenchmarkWrite(b *testing.B) {
	dbURL := testdb.NewMigrated(b)
	ctx := context.Background()
	conn := connect(b, dbURL)
	// One view with one visitor, as the store writes it.
	day := time.Now().UTC().Truncate(24 * time.Hour)
	args := func() []any { // each write with a marker of its own
		return []any{"main", day, 1, 0, 0, [][]byte{make([]byte, 16)}, newMarker(time.Now())}
	}
	var e entry
	scan := e.scanIncrement
	forms := []struct {
		name  string
		write func() error
	}{
		// What the store does: the COMMIT goes out after the statement that
		// inserted the marker succeeded.
		{"begin+statement, commit (the store's)", func() error {
			batch := &pgx.Batch{}
			batch.Queue("begin")
			batch.Queue(incrementSQL, args()...).QueryRow(scan)
			if err := conn.SendBatch(ctx, batch).Close(); err != nil {
				return err
			}
			_, err := conn.Exec(ctx, "commit")
			return err
		}},
		{"transaction, a round trip each", func() error {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return err
			}
			if err := scan(tx.QueryRow(ctx, incrementSQL, args()...)); err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			return tx.Commit(ctx)
		}},
		// One round trip: for comparison.
		{"statement alone", func() error {
			return scan(conn.QueryRow(ctx, incrementSQL, args()...))
		}},
	}
	for _, f := range forms {
		b.Run(f.name, func(b *testing.B) {
			if err := f.write(); err != nil { // prepare outside the timing
				b.Fatal(err)
			}
			for b.Loop() {
				if err := f.write(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// slowObserver keeps the goroutine that reports op's final failure busy
// for a moment, as a slow metrics sink would.
type slowObserver struct {
	noObserver
	op       string
	entered  chan struct{}
	finished atomic.Bool
}

func (o *slowObserver) Failure(op, _ string) {
	if op != o.op {
		return
	}
	close(o.entered)
	time.Sleep(200 * time.Millisecond) // a Close that does not wait returns meanwhile
	o.finished.Store(true)
}

// Close returns only once every goroutine Open started has ended, the
// midnight salt rotation included, even one caught mid-transaction: after
// Close, nothing of the store runs, logs or reports to its Observer.
func TestCloseWaitsForTheBackgroundWork(t *testing.T) {
	// Not parallel: it looks at every goroutine of the test binary, and
	// parallel tests start only once the sequential ones are done.
	dbURL := testdb.NewMigrated(t)
	// A moment before midnight: the rotation gets the new day's salt in a
	// second, and finds its advisory lock held by another session.
	midnight := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	conn := connect(t, dbURL)
	ctx := testCtx(t)
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", saltLock); err != nil {
		t.Fatal(err)
	}
	offset := midnight.Add(-100 * time.Millisecond).Sub(time.Now())
	obs := &slowObserver{op: "get visitor salt", entered: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.Retry, cfg.Observer = fastPolicy(), obs
	cfg.Now = func() time.Time { return time.Now().Add(offset) }
	log, _ := newLogSink(t)
	s, err := Open(dbURL, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the rotation waiting for the salt's lock", func() (bool, string) {
		n := countRows(t, dbURL, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock' and query like 'select pg_advisory_xact_lock%'`)
		return n == 1, fmt.Sprintf("%d waiting", n)
	})

	s.Close()
	select {
	case <-obs.entered:
	default:
		t.Fatal("Close returned before the rotation gave up its transaction")
	}
	if !obs.finished.Load() {
		t.Error("Close returned while the rotation goroutine was still at work")
	}
	if running := backgroundGoroutines(); len(running) > 0 {
		t.Errorf("after Close, %d background goroutines still run:\n%s", len(running), strings.Join(running, "\n\n"))
	}
}

// backgroundGoroutines returns the stacks of the goroutines running one
// of the loops Open starts.
func backgroundGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, loop := range []string{"listen", "rotateDaily", "pruneMarkers", "answerSalt"} {
			if strings.Contains(g, "/db.(*Store)."+loop+"(") {
				out = append(out, g)
			}
		}
	}
	return out
}

// Without Config.Background a store starts nothing beside its pool (the
// owner's controls: one command) and answers from the database.
func TestNoBackgroundWorkUnlessAsked(t *testing.T) {
	// Not parallel: it looks at every goroutine of the test binary.
	dbURL := testdb.NewMigrated(t)
	cfg := DefaultConfig()
	cfg.Retry, cfg.Background = fastPolicy(), false
	log, logs := newLogSink(t)
	s, err := Open(dbURL, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if running := backgroundGoroutines(); len(running) > 0 {
		t.Fatalf("%d background goroutines run without Background:\n%s", len(running), strings.Join(running, "\n\n"))
	}
	ctx := testCtx(t)
	if _, err := s.Increment(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "main"); err != nil || n != 1 {
		t.Fatalf("Count: %d, %v; want 1", n, err)
	}
	if _, err := s.Count(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Count of an unknown name: %v, want ErrNotFound", err)
	}
	st := s.Stats()
	if st.Listening || st.MemoryReads != 0 || st.DatabaseReads != 2 {
		t.Errorf("stats %+v: want no listener, both reads from the database", st)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range logs.records {
		if msg, _ := r["msg"].(string); strings.Contains(msg, "listener") {
			t.Errorf("the log speaks of a listener: %v", r)
		}
	}
}
