package db

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hitcounter/hitcounter/internal/testdb"
)

func autoCreating(t *testing.T, dbURL string, max int) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Retry, cfg.AutoCreate, cfg.MaxCounters = fastPolicy(), true, max
	s, _ := newStoreWith(t, dbURL, cfg)
	return s
}

// A crawler's or a filtered request never creates a counter, and a view
// creates one only when its MayCreate allows it: asked once, at the
// creation.
func TestOnlyAllowedViewsCreate(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s := autoCreating(t, dbURL, 100)
	ctx := testCtx(t)
	for _, k := range []Kind{Bot, Filtered} {
		if _, err := s.Record(ctx, "crawled", Hit{Kind: k}); !errors.Is(err, ErrNotFound) {
			t.Errorf("kind %d: %v, want ErrNotFound", k, err)
		}
	}
	asked := 0
	refuse := func() bool { asked++; return false }
	if _, err := s.Record(ctx, "crawled", Hit{MayCreate: refuse}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a view refused creation: %v, want ErrNotFound", err)
	}
	if asked != 1 {
		t.Errorf("MayCreate asked %d times, want 1", asked)
	}
	if n := countRows(t, dbURL, `select count(*) from counters where name = 'crawled'`); n != 0 {
		t.Fatalf("the counter was made")
	}
	allow := func() bool { asked++; return true }
	if c, err := s.Record(ctx, "crawled", Hit{MayCreate: allow}); err != nil || c.Total != 1 {
		t.Fatalf("a view allowed to create: %+v, %v", c, err)
	}
	if _, err := s.Record(ctx, "crawled", Hit{MayCreate: allow}); err != nil {
		t.Fatal(err)
	}
	if asked != 2 {
		t.Errorf("MayCreate asked %d times in all, want 2: not again once the counter exists", asked)
	}
}

// Past MaxCounters, a hit of a new name is answered from memory: no
// connection, no lock, no count(*) on the request path.
func TestPastTheLimitNewNamesCostNoDatabase(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s := autoCreating(t, dbURL, 2) // main and a
	waitListening(t, s)
	ctx := testCtx(t)
	if _, err := s.Record(ctx, "a", Hit{}); err != nil {
		t.Fatal(err)
	}
	before := s.PoolStats().Acquires
	for i := range 20 {
		if _, err := s.Record(ctx, fmt.Sprintf("flood-%d", i), Hit{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("flood-%d: %v, want ErrNotFound", i, err)
		}
	}
	if got := s.PoolStats().Acquires - before; got != 0 {
		t.Errorf("20 new names past the limit took %d database connections, want none", got)
	}
}

// Two instances making the same new counters at once audit each creation
// once.
func TestAutoCreateAuditedOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	a, b := autoCreating(t, dbURL, 1000), autoCreating(t, dbURL, 1000)
	ctx := testCtx(t)
	const names = 30
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 2*names)
	for i := range names {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				<-start
				if _, err := s.Record(ctx, fmt.Sprintf("new-%d", i), Hit{}); err != nil {
					errs <- err
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := countRows(t, dbURL, `select count(*) from counters where name like 'new-%'`); n != names {
		t.Fatalf("%d counters made, want %d", n, names)
	}
	if n := countRows(t, dbURL, `select count(*) from counter_audit where action = 'create'`); n != names {
		t.Errorf("%d creations audited for %d counters, want one each", n, names)
	}
	if n := countRows(t, dbURL, `select coalesce(sum(hits), 0) from counters where name like 'new-%'`); n != 2*names {
		t.Errorf("%d hits counted, want %d", n, 2*names)
	}
}
