package db

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// An import into a live counter does not hold its hits: while the import
// is stuck writing its past days (the test holds one of those rows), a hit
// of the counter is counted. Once it goes on, the total is exact.
func TestImportDoesNotHoldHits(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	held := date("2020-01-01")
	if _, err := s.Import(ctx, "t", "main", []Day{{Day: held, Views: 5}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, "main", Hit{}); err != nil { // today: 1 view, total 6
		t.Fatal(err)
	}
	tx, err := connect(t, dbURL).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `select from counter_days where counter = 'main' and day = $1 for update`, held); err != nil {
		t.Fatal(err)
	}

	days := []Day{{Day: held, Views: 7}, {Day: s.Today(), Views: 3}}
	for i := range 2000 {
		days = append(days, Day{Day: held.AddDate(0, 0, i+1), Views: 1})
	}
	imported := make(chan error, 1)
	go func() {
		_, err := s.Import(ctx, "t", "main", days, nil)
		imported <- err
	}()
	testkit.Eventually(t, 10*time.Second, "the import waiting for the held day", func() (bool, string) {
		n := countRows(t, dbURL, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock'`)
		return n == 1, fmt.Sprintf("%d waiting", n)
	})
	hit, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := s.Record(hit, "main", Hit{})
	if err != nil || c.Total != 7 {
		t.Fatalf("a hit during the import: %+v, %v; want total 7", c, err)
	}
	select {
	case err := <-imported:
		t.Fatalf("the import ended (%v) while the test held one of its rows: the test proves nothing", err)
	default:
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-imported; err != nil {
		t.Fatal(err)
	}
	// 7 before, plus the 2010 imported views, minus the 5 and the 2 of
	// the rows it replaced.
	if got := testdb.Hits(t, dbURL, "main"); got != 2010 {
		t.Errorf("total %d after the import, want 2010", got)
	}
	if got := dayRow(t, dbURL, "main", s.Today().Format(time.DateOnly)); got.Views != 3 {
		t.Errorf("today's row %+v, want the imported 3 views", got)
	}
}
