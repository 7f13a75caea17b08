package db

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// 50 workers × 200 increments, coalesced and one per hit: every increment
// counted once, every caller its own value, and coalescing really combines.
func TestConcurrentIncrementsAreExact(t *testing.T) {
	t.Parallel()
	for _, onePerHit := range []bool{false, true} {
		name := map[bool]string{false: "coalesced", true: "one per hit"}[onePerHit]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const workers, each = 50, 200
			dbURL := testdb.NewMigrated(t)
			cfg := DefaultConfig()
			cfg.OnePerHit = onePerHit
			s, _ := newStoreWith(t, testdb.WithQuery(t, dbURL, "pool_max_conns", "20"), cfg)
			// One per hit, 10 000 transactions queue on one row lock: on a
			// busy machine (the race detector, other packages) that takes
			// longer than the usual 30s.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := testdb.Hits(t, dbURL, "main")

			values := incrementConcurrently(t, ctx, s, workers, each)
			checkDistinct(t, values, start, workers*each)
			if got, want := testdb.Hits(t, dbURL, "main"), start+workers*each; got != want {
				t.Errorf("final count: got %d, want %d", got, want)
			}
			st := s.Stats()
			if st.Increments != workers*each {
				t.Errorf("Stats.Increments = %d, want %d", st.Increments, workers*each)
			}
			if onePerHit && st.Writes != st.Increments {
				t.Errorf("one per hit: %d writes for %d increments, want one each", st.Writes, st.Increments)
			}
			if !onePerHit && st.Writes >= st.Increments {
				t.Errorf("coalesced: %d writes for %d increments, want fewer writes than increments", st.Writes, st.Increments)
			}
			t.Logf("%s: %d increments in %d writes (%.1f per write)", name, st.Increments, st.Writes, float64(st.Increments)/float64(st.Writes))
		})
	}
}

func incrementConcurrently(t *testing.T, ctx context.Context, s *Store, workers, each int) []int64 {
	t.Helper()
	var mu sync.Mutex
	var values []int64
	var firstErr error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				n, err := s.Increment(ctx, "main")
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					values = append(values, n)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("Increment: %v", firstErr)
	}
	return values
}

// checkDistinct: values are exactly start+1 … start+n, each once.
func checkDistinct(t *testing.T, values []int64, start int64, n int) {
	t.Helper()
	if len(values) != n {
		t.Fatalf("%d values, want %d", len(values), n)
	}
	seen := make(map[int64]bool, n)
	for _, v := range values {
		if seen[v] {
			t.Fatalf("value %d returned twice", v)
		}
		if v <= start || v > start+int64(n) {
			t.Fatalf("value %d outside (%d, %d]", v, start, start+int64(n))
		}
		seen[v] = true
	}
}

// At low load nothing waits for company: each increment is its own write,
// sent at once.
func TestLoneIncrementsGoStraightThrough(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, testdb.NewMigrated(t), fastPolicy())
	ctx := testCtx(t)
	for i := int64(1); i <= 5; i++ {
		if n, err := s.Increment(ctx, "main"); err != nil || n != i {
			t.Fatalf("Increment %d: got %d, %v", i, n, err)
		}
	}
	if st := s.Stats(); st.Writes != 5 || st.Increments != 5 {
		t.Errorf("5 lone increments: %d writes of %d increments, want 5 of 5", st.Writes, st.Increments)
	}
}

// lockCounter holds the row lock of the main counter until the returned
// function is called, so writes queue up behind it.
func lockCounter(t *testing.T, dbURL string) (release func()) {
	t.Helper()
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1 from counters where name = 'main' for update"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// waitBlocked waits until n statements of the test database wait for a lock.
func waitBlocked(t *testing.T, dbURL string, n int) {
	t.Helper()
	ctx := testCtx(t)
	conn := connect(t, dbURL)
	defer conn.Close(ctx) // now, not when the test ends
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got int
		if err := conn.QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements wait for a lock after 10s, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While a write is stuck, increments queue up to the bound; more are
// refused at once, and a queued one whose caller gives up is withdrawn and
// never counted. When the write is free, the queue goes out in one batch.
func TestQueueBoundAndWithdrawal(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	cfg := DefaultConfig()
	cfg.Retry = fastPolicy()
	cfg.MaxBatch, cfg.MaxQueued = 10, 10
	s, _ := newStoreWith(t, dbURL, cfg)
	ctx := testCtx(t)
	release := lockCounter(t, dbURL)

	results := make(chan error, 11)
	go func() { _, err := s.Increment(ctx, "main"); results <- err }() // in flight, stuck on the lock
	waitBlocked(t, dbURL, 1)
	for range 9 {
		go func() { _, err := s.Increment(ctx, "main"); results <- err }()
	}
	// The 10th queued one gives up before its turn.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	waitQueued(t, s, 9)
	go func() { _, err := s.Increment(short, "main"); results <- err }()
	waitQueued(t, s, 10)

	// The queue is full: refused at once.
	if _, err := s.Increment(ctx, "main"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Increment with a full queue: got %v, want ErrUnavailable", err)
	}
	<-short.Done()
	if err := <-results; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the increment that gave up: got %v, want ErrUnavailable", err)
	}

	writesBefore := s.Stats().Writes
	release()
	for range 10 {
		if err := <-results; err != nil {
			t.Fatalf("queued Increment: %v", err)
		}
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 10 {
		t.Errorf("hits: got %d, want 10 (1 stuck + 9 queued; the withdrawn and the refused not counted)", got)
	}
	if got := s.Stats().Writes - writesBefore; got != 2 {
		t.Errorf("writes after the lock was released: %d, want 2 (the stuck one, then the 9 queued in one)", got)
	}
}

// waitQueued waits until n increments of main wait behind the one in flight.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.batches.mu.Lock()
		got := 0
		if q := s.batches.queues["main"]; q != nil {
			got = len(q.waiting)
		}
		s.batches.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d increments queued after 10s, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A batch whose COMMIT answer is lost is resolved once for all its
// members: every member gets its own value, nothing is run twice, and the
// database holds exactly the acknowledged increments.
func TestBatchLostAfterSendIsResolvedOnce(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	cfg := DefaultConfig()
	cfg.Retry = fastPolicy()
	s, logs := newStoreWith(t, proxied, cfg)
	ctx := testCtx(t)
	if _, err := s.Increment(ctx, "main"); err != nil { // a pooled connection to cut
		t.Fatal(err)
	}
	release := lockCounter(t, dbURL)
	results := make(chan result, 20)
	go func() { n, err := s.Increment(ctx, "main"); results <- result{Counts{Total: n}, err} }()
	waitBlocked(t, dbURL, 1)
	for range 19 {
		go func() { n, err := s.Increment(ctx, "main"); results <- result{Counts{Total: n}, err} }()
	}
	waitQueued(t, s, 19)
	// The stuck write went out before this: the fault hits the batch of 19.
	proxy.Arm(pgproxy.CutAfterCommit, 1)
	release()

	seen := map[int64]bool{}
	for range 20 {
		r := <-results
		if r.err != nil {
			t.Errorf("Increment: %v", r.err)
			continue
		}
		if seen[r.counts.Total] || r.counts.Total < 2 || r.counts.Total > 21 {
			t.Errorf("value %d repeated or outside [2, 21]", r.counts.Total)
		}
		seen[r.counts.Total] = true
	}
	if proxy.Armed(pgproxy.CutAfterCommit) != 0 {
		t.Error("the fault did not fire")
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 21 {
		t.Errorf("hits: got %d, want 21", got)
	}
	if recs := logs.with("db commit resolved"); len(recs) != 1 || recs[0]["outcome"] != "committed" {
		t.Errorf("resolutions: %v, want one, committed", recs)
	}
	if got := len(logs.with("db retry")); got != 0 {
		t.Errorf("%d retries of a committed write, want none", got)
	}
}
