package db

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// recorder is an Observer that writes down what it hears.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) Batch(size int)                   { r.add("batch %d", size) }
func (r *recorder) Retry(op, phase, sqlstate string) { r.add("retry %s %s %s", op, phase, sqlstate) }
func (r *recorder) Failure(op, kind string)          { r.add("failure %s %s", op, kind) }
func (r *recorder) Resolved(outcome string)          { r.add("resolved %s", outcome) }

// take returns what was heard since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// The store tells its Observer each retry (with phase and SQLSTATE), each
// final failure by kind, each write's batch size and each resolution of a
// COMMIT in doubt: what the metrics count.
func TestObserverHearsTheStore(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	rec := &recorder{}
	cfg := DefaultConfig()
	cfg.Retry = fastPolicy()
	cfg.Observer = rec
	s, _ := newStoreWith(t, proxied, cfg)
	ctx := testCtx(t)
	rec.take()

	fn, _ := transientFailer(2)
	if err := s.Transact(ctx, "test-op", pgx.TxOptions{}, fn); err != nil {
		t.Fatalf("Transact: %v", err)
	}
	if got, want := rec.take(), []string{"retry test-op body 40001", "retry test-op body 40001"}; !slices.Equal(got, want) {
		t.Errorf("two retries then success: heard %q, want %q", got, want)
	}

	fn, _ = transientFailer(-1)
	if err := s.Transact(ctx, "test-op", pgx.TxOptions{}, fn); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Transact always failing: %v", err)
	}
	got := rec.take()
	if len(got) != cfg.Retry.MaxRetries+1 || got[len(got)-1] != "failure test-op unavailable" {
		t.Errorf("always failing: heard %q, want %d retries and failure test-op unavailable", got, cfg.Retry.MaxRetries)
	}

	if _, err := s.Increment(ctx, "no-such-counter"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Increment of an unknown counter: %v", err)
	}
	if got := rec.take(); !slices.Contains(got, "failure increment not_found") {
		t.Errorf("unknown counter: heard %q, want failure increment not_found", got)
	}

	proxy.Arm(pgproxy.CutAfterCommit, 1)
	if _, err := s.Increment(ctx, "main"); err != nil {
		t.Fatalf("Increment with its COMMIT's answer lost: %v", err)
	}
	if proxy.Armed(pgproxy.CutAfterCommit) != 0 {
		t.Fatal("the fault did not fire")
	}
	got = rec.take()
	if !slices.Contains(got, "resolved committed") || !slices.Contains(got, "batch 1") {
		t.Errorf("a COMMIT in doubt: heard %q, want resolved committed and batch 1", got)
	}
	if slices.ContainsFunc(got, func(e string) bool { return e[:7] == "failure" }) {
		t.Errorf("a resolved COMMIT was reported as a failure: %q", got)
	}
}
