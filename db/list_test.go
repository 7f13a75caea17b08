package db

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// List gives counters as they arrive; when the connection is lost in the
// middle (far more rows than any socket buffer holds are still to come),
// the retry resumes after the last counter given: each counter once, in
// order, the head once.
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
	if len(heads) != 1 || heads[0].Counters != n+1 || heads[0].LongestName != len("c"+pad+"-00000") {
		t.Errorf("head given %+v, want once, with %d counters and the longest name %d bytes", heads, n+1, len("c"+pad+"-00000"))
	}
	increasing := slices.IsSortedFunc(names, func(a, b string) int { return cmp.Compare(a, b) }) && len(slices.Compact(slices.Clone(names))) == len(names)
	if len(names) != n+1 || !increasing {
		t.Errorf("%d counters given (each once, by name: %v), want each of the %d once, by name", len(names), increasing, n+1)
	}
	if retries := logs.with("db retry"); len(retries) == 0 || retries[0]["op"] != "list counters" {
		t.Errorf("no retry of the listing logged (%v): the connection was not lost mid-listing", retries)
	}
}
