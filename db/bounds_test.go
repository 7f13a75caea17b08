package db

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
)

// No owner change, and no statement by hand, takes a total or a day's
// figure past MaxTotal; an import that would is refused whole, before it
// changes anything, where it used to wrap (31 plus two days of
// math.MaxInt64 views became 29).
func TestTotalsStayWithinMaxTotal(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	day := func(n int) time.Time { return time.Date(2024, 3, n, 0, 0, 0, 0, time.UTC) }
	refused := func(what string, _ Change, err error) {
		t.Helper()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	c, err := s.Create(ctx, "t", "blog", 31)
	if err != nil || c.After.Total != 31 {
		t.Fatal(c, err)
	}
	c, err = s.Create(ctx, "t", "big", MaxTotal+1)
	refused("create past the bound", c, err)
	c, err = s.Set(ctx, "t", "blog", math.MaxInt64)
	refused("set to MaxInt64", c, err)
	c, err = s.Import(ctx, "t", "blog", []Day{{Day: day(1), Views: math.MaxInt64}, {Day: day(2), Views: math.MaxInt64}}, nil)
	refused("import of two MaxInt64 days", c, err)
	c, err = s.Import(ctx, "t", "blog", []Day{{Day: day(1), Views: MaxTotal / 2}, {Day: day(2), Views: MaxTotal/2 + 2}}, nil)
	refused("import whose days add up past the bound", c, err)
	c, err = s.Import(ctx, "t", "blog", []Day{{Day: day(1), Views: MaxTotal}}, nil)
	refused("import that takes the total past the bound", c, err)
	if got := testdb.Hits(t, dbURL, "blog"); got != 31 {
		t.Errorf("after the refused changes blog holds %d, want 31", got)
	}
	if n := countRows(t, dbURL, `select count(*) from counter_days where counter = 'blog'`); n != 0 {
		t.Errorf("a refused import left %d day rows", n)
	}
	// The bound itself is allowed, and the schema holds the same bound.
	if c, err := s.Set(ctx, "t", "blog", MaxTotal); err != nil || c.After.Total != MaxTotal {
		t.Errorf("set to MaxTotal: %+v, %v", c, err)
	}
	conn := connect(t, dbURL)
	for _, sql := range []string{
		`update counters set hits = hits + 1 where name = 'blog'`,
		`insert into counter_days (counter, day, views) values ('blog', '2024-03-01', $1)`,
		`insert into counter_days (counter, day, bots) values ('blog', '2024-03-02', $1)`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, int64(MaxTotal+1)) // the schema's bound is MaxTotal's
		}
		if _, err := conn.Exec(context.Background(), sql, args...); sqlState(err) != "23514" {
			t.Errorf("%s: %v, want a check violation", sql, err)
		}
	}
}
