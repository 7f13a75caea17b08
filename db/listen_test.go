package db

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

func waitListening(t *testing.T, s *Store) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "live listener", func() (bool, string) {
		st := s.Stats()
		return st.Listening, fmt.Sprintf("%+v", st)
	})
}

// waitCount waits until the store's Count answers want.
func waitCount(t *testing.T, s *Store, want int64) time.Duration {
	t.Helper()
	start := time.Now()
	ctx := testCtx(t)
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("count of %d", want), func() (bool, string) {
		n, err := s.Count(ctx, "main")
		return err == nil && n == want, fmt.Sprintf("%d, %v", n, err)
	})
	return time.Since(start)
}

func execSQL(t *testing.T, dbURL, sql string) {
	t.Helper()
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	defer conn.Close(ctx) // now, not when the test ends
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Reads come from memory while the listener is up, and changes made
// elsewhere (another instance, psql) reach that memory.
func TestCountsServedFromMemoryStayFresh(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	a, _ := newStore(t, dbURL, fastPolicy())
	b, _ := newStore(t, dbURL, fastPolicy())
	waitListening(t, a)
	waitListening(t, b)
	ctx := testCtx(t)

	before := b.Stats()
	for range 10 {
		if n, err := b.Count(ctx, "main"); err != nil || n != 0 {
			t.Fatalf("Count: got %d, %v; want 0", n, err)
		}
	}
	if st := b.Stats(); st.MemoryReads-before.MemoryReads != 10 || st.DatabaseReads != before.DatabaseReads {
		t.Errorf("10 reads with the listener up: %d from memory, %d from the database; want 10 and 0",
			st.MemoryReads-before.MemoryReads, st.DatabaseReads-before.DatabaseReads)
	}

	// An increment on instance a reaches instance b.
	if _, err := a.Increment(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	t.Logf("another instance's increment reached memory after %s", waitCount(t, b, 1))

	// So does a change by hand, and one that goes down (versions, not
	// values, order the notifications).
	execSQL(t, dbURL, "update counters set hits = 500 where name = 'main'")
	waitCount(t, b, 500)
	execSQL(t, dbURL, "update counters set hits = 7 where name = 'main'")
	waitCount(t, a, 7)
	waitCount(t, b, 7)
	if st := b.Stats(); st.DatabaseReads != before.DatabaseReads {
		t.Errorf("%d reads went to the database, want none while the listener is up", st.DatabaseReads-before.DatabaseReads)
	}

	// A counter created and deleted by hand.
	execSQL(t, dbURL, "insert into counters (name, hits) values ('other', 3)")
	testkit.Eventually(t, 10*time.Second, "the new counter", func() (bool, string) {
		e, ok := b.cache.get("other")
		return ok && e.hits == 3, fmt.Sprint(e.hits, ok)
	})
	execSQL(t, dbURL, "delete from counters where name = 'other'")
	testkit.Eventually(t, 10*time.Second, "the deleted counter gone", func() (bool, string) {
		_, ok := b.cache.get("other")
		return !ok, fmt.Sprint(ok)
	})
	if _, err := b.Count(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Count of a deleted counter: got %v, want ErrNotFound", err)
	}
}

// With the listener's connection gone, memory is not trusted: reads go to
// the database (here also gone: they fail, rather than show a stale count).
// The listener reconnects by itself, logs both, and reloads what it missed.
func TestListenerDownFallsBackAndRecovers(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	execSQL(t, dbURL, "insert into counters (name) values ('gone')")
	s, logs := newStore(t, proxied, fastPolicy())
	waitListening(t, s)
	ctx := testCtx(t)
	if _, err := s.Counts(ctx, "gone"); err != nil {
		t.Fatalf("Counts(gone) before it was deleted: %v", err)
	}

	proxy.SetDown(true)
	testkit.Eventually(t, 10*time.Second, "listener down", func() (bool, string) {
		st := s.Stats()
		return !st.Listening, fmt.Sprintf("%+v", st)
	})
	logs.waitFor(t, "db listener down: reads go to the database", 1)
	if _, err := s.Count(ctx, "main"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Count with the listener and the database down: got %v, want ErrUnavailable", err)
	}
	// Changed while this instance could hear nothing.
	execSQL(t, dbURL, "update counters set hits = 42 where name = 'main'")
	execSQL(t, dbURL, "delete from counters where name = 'gone'")

	proxy.SetDown(false)
	waitListening(t, s)
	logs.waitFor(t, "db listener up: reads are served from memory", 2)
	before := s.Stats()
	if n, err := s.Count(ctx, "main"); err != nil || n != 42 {
		t.Fatalf("Count after the listener came back: got %d, %v; want 42", n, err)
	}
	// The reload forgets a counter deleted while it heard nothing.
	if _, err := s.Counts(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Counts(gone) after it was deleted while the listener was down: %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.MemoryReads != before.MemoryReads+2 {
		t.Errorf("the reads after recovery did not come from memory: %+v", st)
	}
	up := logs.with("db listener up: reads are served from memory")
	if got := num(t, up[len(up)-1], "attempts"); got < 2 {
		t.Errorf("reconnect logged after %d attempts, want ≥ 2", got)
	}
	for _, rec := range logs.with("db listener down: reads go to the database") {
		if rec["attempt"] == nil || rec["wait"] == nil || rec["err"] == nil {
			t.Errorf("listener down log without attempt, wait or err: %v", rec)
		}
	}
}

// A listener whose server session is killed (pg_terminate_backend) comes
// back, and reads answered meanwhile are the database's.
func TestListenerKilledReconnects(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, logs := newStore(t, dbURL, fastPolicy())
	waitListening(t, s)
	execSQL(t, dbURL, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = '"+listenerName+"' and datname = current_database()")
	logs.waitFor(t, "db listener down: reads go to the database", 1)
	logs.waitFor(t, "db listener up: reads are served from memory", 2)
	ctx := testCtx(t)
	if _, err := s.Increment(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, s, 1)
}

// While the listener is live, memory holds every counter, so a name it
// lacks (crawlers ask for random ones) is not found without a transaction
// or a log line, for reads and hits alike. Memory first makes sure it has
// every change committed before the question, so a counter made a moment
// ago elsewhere (here by hand) is found at once; with auto-creation on, a
// hit still creates its counter.
func TestUnknownNamesAreAnsweredFromMemory(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	heard := &recorder{}
	cfg := DefaultConfig()
	cfg.Retry, cfg.Observer = fastPolicy(), heard
	s, logs := newStoreWith(t, dbURL, cfg)
	waitListening(t, s)
	ctx := testCtx(t)
	logged := func() int {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return len(logs.records)
	}

	heard.take()
	records, pool, before := logged(), s.PoolStats(), s.Stats()
	const n = 20
	for i := range n {
		name := fmt.Sprintf("random-%d", i)
		if _, err := s.Counts(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Counts(%s): %v, want ErrNotFound", name, err)
		}
		if _, err := s.Record(ctx, name, Hit{Visitor: "crawler"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Record(%s): %v, want ErrNotFound", name, err)
		}
	}
	if got := s.PoolStats().Acquires - pool.Acquires; got != 0 {
		t.Errorf("%d reads and %d hits of unknown counters took %d database connections, want none", n, n, got)
	}
	if st := s.Stats(); st.DatabaseReads != before.DatabaseReads || st.Writes != before.Writes || st.MemoryReads-before.MemoryReads != n {
		t.Errorf("stats went from %+v to %+v, want %d more memory reads and nothing else", before, st, n)
	}
	if got := logged() - records; got != 0 {
		t.Errorf("%d log lines, want none", got)
	}
	// The metrics count them as before, wherever the answer came from.
	var notFound int
	for _, e := range heard.take() {
		if e == "failure count not_found" || e == "failure increment not_found" {
			notFound++
		}
	}
	if notFound != 2*n {
		t.Errorf("the Observer heard %d not_found failures, want %d", notFound, 2*n)
	}

	for i := range 10 {
		read, hit := fmt.Sprintf("read-%d", i), fmt.Sprintf("hit-%d", i)
		execSQL(t, dbURL, fmt.Sprintf("insert into counters (name, hits) values ('%s', 5), ('%s', 5)", read, hit))
		if c, err := s.Counts(ctx, read); err != nil || c.Total != 5 {
			t.Fatalf("Counts right after %s was made: %+v, %v; want a total of 5", read, c, err)
		}
		if c, err := s.Record(ctx, hit, Hit{}); err != nil || c.Total != 6 {
			t.Fatalf("Record right after %s was made: %+v, %v; want a total of 6", hit, c, err)
		}
	}

	cfg.AutoCreate = true
	auto, _ := newStoreWith(t, dbURL, cfg)
	waitListening(t, auto)
	if c, err := auto.Record(ctx, "made-by-a-hit", Hit{}); err != nil || c.Total != 1 {
		t.Fatalf("auto-creation on: %+v, %v; want the counter made with a total of 1", c, err)
	}
}
