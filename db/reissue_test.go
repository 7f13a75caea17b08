package db

import (
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/pgcluster"
	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// A server that crashes with a COMMIT in flight, before anything of that
// transaction reached its WAL, hands the same transaction id out again
// after its restart. If other writers take that id before the store looks
// its COMMIT up, a lookup by id finds "committed" — someone else's
// transaction — while the hit is not in the database. The lookup must
// lose that race here, every time, and the store must still count the hit
// exactly once.
func TestLookupAfterTheIdWasReissued(t *testing.T) {
	t.Parallel()
	// A cluster of the test's own, which it crashes. Durable commits, and
	// nothing that writes the WAL in the background: the transaction's
	// records stay in the server's memory until the crash.
	pg, err := pgcluster.Start("-c synchronous_commit=on -c wal_writer_delay=10000 -c bgwriter_lru_maxpages=0 -c autovacuum=off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	ctx := testCtx(t)
	dbURL, err := pg.CreateDatabase(ctx, "hc_reissue")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Migrate(t, dbURL)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	cfg := DefaultConfig()
	cfg.Retry = fastPolicy()
	s, logs := newStoreWith(t, proxied, cfg)
	if n, err := s.Increment(ctx, "main"); err != nil || n != 1 {
		t.Fatalf("first Increment: %d, %v", n, err)
	}

	// The next COMMIT never reaches the server, which looks crashed to the
	// store from then on; its transaction stays open on the real server.
	proxy.Arm(pgproxy.CrashAtCommit, 1)
	done := make(chan error, 1)
	var answered int64
	go func() {
		n, err := s.Increment(ctx, "main")
		answered = n
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for proxy.Armed(pgproxy.CrashAtCommit) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the increment's COMMIT never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The crash, and a restart: other writers take ids until that one is
	// handed out again and committed, before the store may ask.
	if _, err := pg.CrashAndReissue(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	proxy.SetDown(false)
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the increment did not end within 20s of the server's return")
	}
	hits := testdb.Hits(t, dbURL, "main")
	switch {
	case err != nil:
		t.Logf("Increment: %v", err) // told it was not counted, or unknown: checked below
		if hits != 1 {
			t.Errorf("the database holds %d hits after an increment that failed; want 1", hits)
		}
	case answered != 2 || hits != 2:
		t.Errorf("Increment answered %d, the database holds %d: want both 2", answered, hits)
	}
	if len(logs.with("db commit resolved")) == 0 {
		t.Error("the COMMIT in doubt was never looked up")
	}
}
