package db

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// List gives counters as they arrive; when the connection is lost in the
// middle, the retry resumes after the last counter given: each counter
// once, in order, the head once. (The rows still in the sockets' buffers
// arrive first: the loss shows while reading the rest, or, when all were
// buffered, at COMMIT; either way the listing is retried.)
func TestListResumesAfterALostConnection(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	const n = 20_000
	pad := strings.Repeat("x", 50) // about 2 MB of rows in all
	execSQL(t, dbURL, fmt.Sprintf(`insert into counters (name) select 'c%s-' || lpad(i::text, 5, '0') from generate_series(1, %d) i`, pad, n))
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	s, logs := newStore(t, proxied, fastPolicy())

	var heads []Listing
	var names []string
	err := s.List(testCtx(t), func(l Listing) error {
		heads = append(heads, l)
		return nil
	}, func(c Counts) error {
		names = append(names, c.Name)
		if len(names) == 10 {
			proxy.SetDown(true) // every connection cut, this one mid-listing
			proxy.SetDown(false)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(heads) != 1 || heads[0].LongestName != len("c"+pad+"-00000") {
		t.Errorf("head given %+v, want once, with the longest name %d bytes", heads, len("c"+pad+"-00000"))
	}
	increasing := slices.IsSortedFunc(names, func(a, b string) int { return cmp.Compare(a, b) }) && len(slices.Compact(slices.Clone(names))) == len(names)
	if len(names) != n+1 || !increasing {
		t.Errorf("%d counters given (each once, by name: %v), want each of the %d once, by name", len(names), increasing, n+1)
	}
	if retries := logs.with("db retry"); len(retries) == 0 || retries[0]["op"] != "list counters" {
		t.Errorf("no retry of the listing logged (%v): the connection was not lost mid-listing", retries)
	}
}

// A read-only transaction whose COMMIT's answer is lost changes nothing,
// so it is run again rather than reported as an outcome in doubt.
func TestReadOnlyCommitLostIsRetried(t *testing.T) {
	t.Parallel()
	proxy, proxied := pgproxy.ForTest(t, testdb.NewMigrated(t))
	s, _ := newStore(t, proxied, fastPolicy())
	ctx := testCtx(t)
	runs := 0
	proxy.Arm(pgproxy.CutAfterCommit, 1)
	err := s.Transact(ctx, "read", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		var n int
		return tx.QueryRow(ctx, `select count(*) from counters`).Scan(&n)
	})
	if proxy.Armed(pgproxy.CutAfterCommit) != 0 {
		t.Fatal("the fault did not fire")
	}
	if err != nil || runs != 2 {
		t.Errorf("a read whose COMMIT answer was lost: %v after %d runs, want success after 2", err, runs)
	}
}
